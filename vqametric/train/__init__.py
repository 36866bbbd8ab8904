"""Training, by what is trained.

* :mod:`vqametric.train.fast`: the default fast model's recipes (data, synthetic degradations,
  losses, evaluation, the compact head's and the default model's trainers);
* :mod:`vqametric.train.reasoning`: reasoning models (VQAThinker's rewards, GRPO, ASO, the
  training adapters one module per family, the configs and runs of ``train grpo | aso``);
* :mod:`~vqametric.train.distill`: reasoning model -> fast head;
* shared: :mod:`~vqametric.train.metrics` (SRCC, PLCC after a 4-parameter logistic fit, Kendall
  tau), :mod:`~vqametric.train.manifest` (video manifests), :mod:`~vqametric.train.vmaf`;
* the command: :mod:`~vqametric.train.cli` (``vqametric train head | fusion | grpo | aso | distill``, the
  one entry point), :mod:`~vqametric.train.config` (one configuration system for every mode: typed
  dataclasses read from TOML or JSON, overridden with ``--set KEY=VALUE``) and
  :mod:`~vqametric.train.options` (command-line options derived from a config).

Training needs the ``train`` extra (``pip install vqametric[train]``).
"""
from ..lazy import lazy_getattr

__all__ = ["distortions", "LADDERS", "SPATIAL_LADDERS", "TEMPORAL_LADDERS", "TEMPORAL_PERTURBATIONS", "degrade",
           "apply_indices", "make_clip_from_image", "temporal_perturbation", "temporal_perturbation_indices"]
__getattr__ = lazy_getattr(__name__, {"distortions": "fast.distortions:",
                                      **{n: "fast.distortions" for n in __all__[1:]}}, globals())
