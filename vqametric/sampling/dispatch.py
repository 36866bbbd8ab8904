"""Chooses how to preprocess: the fused kernels for GPU frames, the plain-PyTorch reference elsewhere.

Set ``VQAMETRIC_FORCE_REFERENCE=1`` to always use the reference (debugging, parity checks).
The kernels are not differentiable, so inputs that need gradients always take the reference.
"""
from __future__ import annotations

import os

import torch

from ..io.frames import Frames, RGBFrames
from .plan import SamplingPlan
from .layouts import QWEN25_VL, QwenVLLayout, internvl_tiles_reference, qwen_vl_patches_reference
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
        from .. import kernels  # optional: the Triton kernels (extra `kernels`), loaded only for CUDA frames
    except ImportError:
        return False
    return bool(getattr(kernels, "is_available", lambda: False)())


def _dispatch(kernel: str, reference, frames: Frames, *args, device=None, **kwargs):
    """Run ``vqametric.kernels.<kernel>`` when :func:`kernels_enabled`, else ``reference``."""
    device = torch.device(device) if device is not None else frames.device
    if kernels_enabled(frames, device):
        from .. import kernels  # optional: the Triton kernels, known to import here (kernels_enabled)
        return getattr(kernels, kernel)(frames, *args, device=device, **kwargs)
    return reference(frames, *args, device=device, **kwargs)


def preprocess(frames: Frames, plan: SamplingPlan, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Frames -> normalised views (see :func:`~vqametric.sampling.reference.preprocess_reference`)."""
    return _dispatch("preprocess", preprocess_reference, frames, plan, dtype=dtype, device=device)


def internvl_tiles(frames: Frames, size: int = 448, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None, **kwargs) -> torch.Tensor:
    """InternVL square tiles (see :func:`~vqametric.sampling.layouts.internvl_tiles_reference`)."""
    return _dispatch("internvl_tiles", internvl_tiles_reference, frames, size, dtype=dtype, device=device, **kwargs)


def qwen_vl_patches(frames: Frames, layout: QwenVLLayout = QWEN25_VL, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen-VL ``(pixel_values, grid_thw)`` (see :func:`~vqametric.sampling.layouts.qwen_vl_patches_reference`)."""
    return _dispatch("qwen_vl_patches", qwen_vl_patches_reference, frames, layout, dtype=dtype, device=device)
