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
from .frames import (RGBFrames, check_float_values, check_frame_count_and_size, check_frame_dtype,
                     check_tensor_storage)


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
    a = np.ascontiguousarray(a)
    if any(st < 0 for st in a.strides):  # a one-frame reversed view counts as contiguous; torch refuses it
        a = a.copy()
    if a.dtype == np.uint8:
        data = torch.from_numpy(a)
    elif np.issubdtype(a.dtype, np.floating):
        wide = torch.from_numpy(a if a.dtype in (np.float16, np.float32, np.float64) else a.astype(np.float64))
        check_frame_count_and_size(*wide.shape[:3], what)
        check_float_values(wide, what)  # before narrowing to float32: 1e300 is out of range, not Inf
        data = wide.float()
    else:
        raise InvalidVideoInput(f"{what} has dtype {a.dtype}; frames must be uint8 (0-255) or float in [0, 1]: "
                                "convert with a.astype(np.uint8) for 0-255 values or a / 255.0")
    check_frame_count_and_size(*data.shape[:3], what)
    return RGBFrames.trusted(data)


def rgb_from_torch(x: torch.Tensor) -> RGBFrames:
    """``(T, 3, H, W)`` or ``(3, H, W)`` tensor -> :class:`RGBFrames` (a channels-last view, no copy).

    Gradients flow through floating-point inputs.
    """
    what = f"tensor of shape {tuple(x.shape)}"
    check_tensor_storage(x, what)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim == 5:
        raise InvalidVideoInput(f"{what} is a batch (B, T, 3, H, W); pass it to VQAThinkerMetric.update "
                                "or score_batch, or index one clip")
    if x.ndim != 4:
        raise InvalidVideoInput(f"{what} has rank {x.ndim}; expected (T, 3, H, W) frames, (3, H, W) for one "
                                "image, or (B, T, 3, H, W) for a batch")
    check_frame_dtype(x.dtype, what)
    if x.shape[1] != 3:
        hint = "; it looks channels-last: use x.permute(0, 3, 1, 2)" if x.shape[-1] == 3 else ""
        raise InvalidVideoInput(f"{what} must have 3 (RGB) channels in dimension 1{hint}")
    check_frame_count_and_size(x.shape[0], x.shape[2], x.shape[3], what)
    if x.is_floating_point():
        check_float_values(x, what)
    return RGBFrames.trusted(x.permute(0, 2, 3, 1))
