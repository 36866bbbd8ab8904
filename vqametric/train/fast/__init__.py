"""The default fast model's recipes: data, synthetic degradations, losses, evaluation, trainers.

* :mod:`~vqametric.train.fast.distortions`: pure, seeded degradations of ``(T, H, W, 3)`` uint8
  clips with severity levels 1-5, VQAThinker's temporal perturbations, and moving clips from stills
  (modules: levels, spatial, temporal, stills);
* :mod:`~vqametric.train.fast.data`: the BIQ2021 manifest (train CSV only) and the synthetic-ladder
  samples, turned into head inputs through the same sampling plan and preprocessing as inference;
* :mod:`~vqametric.train.fast.losses`: regression, ranking, temporal-consistency and attribution losses;
* :mod:`~vqametric.train.fast.evaluate`: the recipes' evaluations (pan clips, ladders, consistency);
* :mod:`~vqametric.train.fast.head_trainer`: the compact head's recipe, ``vqametric train head``
  (its config: :mod:`~vqametric.train.fast.head_config`; docs/training-head.md);
* :mod:`~vqametric.train.fast.fusion_trainer`: the default model's recipe, ``vqametric train fusion``
  (its config: :mod:`~vqametric.train.fast.fusion_config`; docs/training-fusion.md);
* :mod:`~vqametric.train.fast.user_eval`: the default model's goals through ``vqametric.score``.
"""
