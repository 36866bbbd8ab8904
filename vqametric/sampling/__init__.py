"""Sampling plans (pure index math) and the preprocessing that turns frames into model inputs."""
from .dispatch import FORCE_REFERENCE_ENV, preprocess
from .plan import (FragmentPlan, SamplingConfig, SamplingPlan, Segment, fragment_plan, frames_at_fps, make_plan,
                   segment_midpoints)
from .reference import preprocess_reference, yuv420_to_rgb

__all__ = ["SamplingConfig", "SamplingPlan", "FragmentPlan", "Segment", "make_plan", "segment_midpoints",
           "frames_at_fps", "fragment_plan", "preprocess", "preprocess_reference", "yuv420_to_rgb",
           "FORCE_REFERENCE_ENV"]
