"""Training the fast head: synthetic degradations, data, losses and the recipe.

* :mod:`vqametric.train.distortions`: pure, seeded degradations of ``(T, H, W, 3)`` uint8 clips
  with severity levels 1-5, VQAThinker's temporal perturbations, and moving clips from stills;
* :mod:`vqametric.train.data`: the BIQ2021 manifest (train CSV only) and the synthetic-ladder
  samples, turned into head inputs through the same sampling plan and preprocessing as inference;
* :mod:`vqametric.train.losses`: regression, ranking, temporal-consistency and attribution losses;
* :mod:`vqametric.train.metrics`: SRCC, PLCC after a 4-parameter logistic fit, Kendall tau;
* :mod:`vqametric.train.head_trainer`: the recipe,
  ``python -m vqametric.train.head_trainer --data DIR --out DIR`` (see docs/training-head.md).

Training needs the ``train`` extra (``pip install vqametric[train]``) for scipy.
"""
from . import distortions
from .distortions import (LADDERS, SPATIAL_LADDERS, TEMPORAL_LADDERS, TEMPORAL_PERTURBATIONS, apply_indices, degrade,
                          make_clip_from_image, temporal_perturbation, temporal_perturbation_indices)

__all__ = ["distortions", "LADDERS", "SPATIAL_LADDERS", "TEMPORAL_LADDERS", "TEMPORAL_PERTURBATIONS", "degrade",
           "apply_indices", "make_clip_from_image", "temporal_perturbation", "temporal_perturbation_indices"]
