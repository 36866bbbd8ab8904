"""Training reasoning models: VQAThinker's rewards, GRPO, Analytic Score Optimization, the
policies they train (:mod:`.policies`, one module per model family), and ``vqametric train grpo |
aso`` (:mod:`.config`, :mod:`.run`); see docs/training-grpo-aso.md."""
