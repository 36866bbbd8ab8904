"""Training, by what is trained.

* :mod:`vqametric.train.fast`: the default fast model's recipes (data, synthetic degradations,
  losses, evaluation, the compact head's and the default model's trainers);
* :mod:`vqametric.train.reasoning`: reasoning models (VQAThinker's rewards, GRPO, ASO, policies);
* shared: :mod:`~vqametric.train.metrics` (SRCC, PLCC after a 4-parameter logistic fit, Kendall
  tau), :mod:`~vqametric.train.manifest` (video manifests), :mod:`~vqametric.train.vmaf`,
  :mod:`~vqametric.train.distill` (reasoning model -> fast head) and :mod:`~vqametric.train.cli`
  (``vqametric train grpo | aso | distill``).

Training needs the ``train`` extra (``pip install vqametric[train]``).
"""
from ..lazy import lazy_getattr

__all__ = ["distortions", "LADDERS", "SPATIAL_LADDERS", "TEMPORAL_LADDERS", "TEMPORAL_PERTURBATIONS", "degrade",
           "apply_indices", "make_clip_from_image", "temporal_perturbation", "temporal_perturbation_indices"]
__getattr__ = lazy_getattr(__name__, {"distortions": "fast.distortions:",
                                      **{n: "fast.distortions" for n in __all__[1:]}}, globals())
