"""Reasoning mode: video quality from multimodal language models that explain their rating.

Families (one adapter module each): ``vqathinker`` (InternVL3 + SlowFast motion token, the
VQAThinker release), ``qwen2.5-vl`` and ``qwen3-vl`` (R1-style quality models such as
VisualQuality-R1), plus multi-dimension prompting (:mod:`.dimensions`) for any of them.
See docs/reasoning.md.
"""
from .generation import GenerationOptions
from .memory import ModelTooLarge
from .parsing import expected_from_level_probs, expected_score, normalise_digits, parse_dimensions, parse_score
from .prompts import ULTRAVQA_DIMENSIONS
from .scorer import FAMILIES, LMMScorer

__all__ = ["LMMScorer", "GenerationOptions", "ModelTooLarge", "FAMILIES", "ULTRAVQA_DIMENSIONS", "parse_score",
           "parse_dimensions", "normalise_digits", "expected_score", "expected_from_level_probs"]
