"""Training reasoning models: VQAThinker's rewards, GRPO, Analytic Score Optimization and the
policies they train (see docs/training-grpo-aso.md)."""
