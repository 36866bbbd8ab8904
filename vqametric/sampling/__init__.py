"""Sampling plans (pure index math) and the preprocessing that turns frames into model inputs.

The plan names load without torch; the preprocessing names load it on first use.
"""
from ..lazy import lazy_getattr
from .plan import (FragmentPlan, SamplingConfig, SamplingPlan, Segment, fragment_plan, frames_at_fps, make_plan,
                   segment_midpoints)

_LAZY = {"FORCE_REFERENCE_ENV": "dispatch", "preprocess": "dispatch", "preprocess_reference": "reference",
         "yuv420_to_rgb": "reference"}

__all__ = ["SamplingConfig", "SamplingPlan", "FragmentPlan", "Segment", "make_plan", "segment_midpoints",
           "frames_at_fps", "fragment_plan", "preprocess", "preprocess_reference", "yuv420_to_rgb",
           "FORCE_REFERENCE_ENV"]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
