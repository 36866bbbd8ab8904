"""Chooses how to preprocess: the fused kernels for GPU frames, the plain-PyTorch reference elsewhere.

Set ``VQAMETRIC_FORCE_REFERENCE=1`` to always use the reference (debugging, parity checks).
The kernels are not differentiable, so inputs that need gradients always take the reference.
"""
from __future__ import annotations

import os

import torch

from ..io.frames import Frames, RGBFrames
from .plan import SamplingPlan
from .reference import preprocess_reference

FORCE_REFERENCE_ENV = "VQAMETRIC_FORCE_REFERENCE"


def kernels_enabled(frames: Frames, device: torch.device) -> bool:
    """True when the fused kernels should handle these frames on ``device``."""
    if os.environ.get(FORCE_REFERENCE_ENV, "").strip() not in ("", "0"):
        return False
    if device.type != "cuda" or frames.device.type != "cuda":
        return False
    if isinstance(frames, RGBFrames) and frames.data.requires_grad:
        return False
    try:
        from .. import kernels
    except ImportError:
        return False
    return bool(getattr(kernels, "is_available", lambda: False)())


def preprocess(frames: Frames, plan: SamplingPlan, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Frames -> normalised views (see :func:`~vqametric.sampling.reference.preprocess_reference`)."""
    device = torch.device(device) if device is not None else frames.device
    if kernels_enabled(frames, device):
        from .. import kernels
        return kernels.preprocess(frames, plan, dtype=dtype, device=device)
    return preprocess_reference(frames, plan, dtype=dtype, device=device)
