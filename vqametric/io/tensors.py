"""Validation of in-memory video: numpy arrays and torch tensors become :class:`RGBFrames`.

Accepted layouts (anything else raises :class:`InvalidVideoInput` naming the fix):

* numpy ``(T, H, W, 3)`` or ``(H, W, 3)`` (one frame), ``uint8`` or float in ``[0, 1]``;
* torch ``(T, 3, H, W)`` or ``(3, H, W)`` (one frame), ``uint8`` or float in ``[0, 1]``, any device.
  A ``(B, T, 3, H, W)`` batch is split into clips by :func:`vqametric.io.iter_videos`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidVideoInput
from .frames import RGBFrames


def check_float_values(x: torch.Tensor, what: str) -> None:
    """Reject NaN/Inf and values outside ``[0, 1]`` in a floating-point video tensor."""
    d = x.detach()
    finite = torch.isfinite(d)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise InvalidVideoInput(f"{what} contains {n_bad} NaN or Inf value(s); clean the frames "
                                "(e.g. torch.nan_to_num) before scoring")
    lo, hi = float(d.min()), float(d.max())
    if lo < 0.0 or hi > 1.0:
        hint = " it looks like 0-255 data: pass uint8 or divide by 255" if hi > 1.0 and hi <= 255.0 else ""
        raise InvalidVideoInput(f"{what} has values in [{lo:.4g}, {hi:.4g}], outside the declared range "
                                f"[0, 1] for floating-point frames;{hint or ' clamp or rescale it'}")


def _check_dtype(dtype, what: str) -> None:
    if dtype == torch.uint8 or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return
    raise InvalidVideoInput(f"{what} has dtype {dtype}; frames must be uint8 (0-255) or floating point "
                            "in [0, 1]: convert with x.to(torch.uint8) for 0-255 values or x.float() / 255")


def _check_spatial(t: int, h: int, w: int, what: str) -> None:
    if t == 0:
        raise InvalidVideoInput(f"{what} has zero frames; pass at least one frame")
    if h == 0 or w == 0:
        raise InvalidVideoInput(f"{what} has an empty frame size {h}x{w}")


def rgb_from_numpy(a: np.ndarray) -> RGBFrames:
    """``(T, H, W, 3)`` or ``(H, W, 3)`` numpy array -> :class:`RGBFrames` (zero-copy on CPU)."""
    what = f"numpy array of shape {a.shape}"
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        hint = "; pass a batch as a list of (T, H, W, 3) arrays" if a.ndim == 5 else ""
        raise InvalidVideoInput(f"{what} has rank {a.ndim}; expected (T, H, W, 3) frames "
                                f"(or (H, W, 3) for one image){hint}")
    if a.shape[-1] != 3:
        hint = "; it looks channels-first: use a.transpose(0, 2, 3, 1)" if a.shape[1] == 3 else ""
        raise InvalidVideoInput(f"{what} must have 3 (RGB) channels last{hint}")
    if a.dtype == np.uint8:
        data = torch.from_numpy(np.ascontiguousarray(a))
    elif np.issubdtype(a.dtype, np.floating):
        data = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    else:
        raise InvalidVideoInput(f"{what} has dtype {a.dtype}; frames must be uint8 (0-255) or float in [0, 1]: "
                                "convert with a.astype(np.uint8) for 0-255 values or a / 255.0")
    _check_spatial(*data.shape[:3], what)
    if data.is_floating_point():
        check_float_values(data, what)
    return RGBFrames(data)


def rgb_from_torch(x: torch.Tensor) -> RGBFrames:
    """``(T, 3, H, W)`` or ``(3, H, W)`` tensor -> :class:`RGBFrames` (a channels-last view, no copy).

    Gradients flow through floating-point inputs.
    """
    what = f"tensor of shape {tuple(x.shape)}"
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim == 5:
        raise InvalidVideoInput(f"{what} is a batch (B, T, 3, H, W); pass it to VQAThinkerMetric.update "
                                "or score_batch, or index one clip")
    if x.ndim != 4:
        raise InvalidVideoInput(f"{what} has rank {x.ndim}; expected (T, 3, H, W) frames, (3, H, W) for one "
                                "image, or (B, T, 3, H, W) for a batch")
    _check_dtype(x.dtype, what)
    if x.shape[1] != 3:
        hint = "; it looks channels-last: use x.permute(0, 3, 1, 2)" if x.shape[-1] == 3 else ""
        raise InvalidVideoInput(f"{what} must have 3 (RGB) channels in dimension 1{hint}")
    _check_spatial(x.shape[0], x.shape[2], x.shape[3], what)
    if x.is_floating_point():
        check_float_values(x, what)
    return RGBFrames(x.permute(0, 2, 3, 1))
