"""Decoded frame containers: what the decode stage hands to preprocessing.

Two representations, so that codec loops need no colour conversion before the fused kernels:

* :class:`RGBFrames`: ``data`` of shape ``(T, H, W, 3)`` (channels-last; may be a strided view of a
  ``(T, 3, H, W)`` tensor), dtype ``uint8`` (0-255) or floating point in ``[0, 1]``.
* :class:`YUV420Frames`: planar 4:2:0, ``y`` ``(T, H, W)``, ``u``/``v`` ``(T, ceil(H/2), ceil(W/2))``,
  integer samples of ``bit_depth`` bits (8: ``uint8``; 9-16: ``int16``/``int32``/``uint16``),
  a colour matrix (``bt601``, ``bt709``, ``bt2020``) and a range (limited or full).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from ..errors import InvalidVideoInput

MATRICES = ("bt601", "bt709", "bt2020")
_INT_DTYPES = (torch.uint8, torch.int16, torch.int32, torch.uint16)


@dataclass
class RGBFrames:
    """RGB frames, ``data`` ``(T, H, W, 3)``: uint8 in [0, 255] or float in [0, 1].

    Validated on construction (:class:`InvalidVideoInput` for a wrong type, rank, channel count,
    dtype, range, NaN/Inf or an empty clip), as every other input is.
    """

    data: torch.Tensor

    def __post_init__(self) -> None:
        validate_rgb(self.data, "RGBFrames data")

    @classmethod
    def trusted(cls, data: torch.Tensor) -> "RGBFrames":
        """Wrap ``data`` that was already validated (or made by vqametric) without checking it again."""
        frames = cls.__new__(cls)
        frames.data = data
        return frames

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def device(self) -> torch.device:
        return self.data.device

    def select(self, indices: torch.Tensor) -> "RGBFrames":
        return RGBFrames.trusted(self.data.index_select(0, indices.to(self.data.device)))

    def to(self, device: torch.device | str) -> "RGBFrames":
        return RGBFrames.trusted(self.data.to(device, non_blocking=True))


@dataclass
class YUV420Frames:
    """Planar YUV 4:2:0 frames as codec loops hold them (I420; NV12 via :meth:`from_nv12`).

    ``y``: ``(T, H, W)``; ``u``, ``v``: ``(T, ceil(H/2), ceil(W/2))``; integer samples of
    ``bit_depth`` bits. ``matrix`` is one of ``bt601``/``bt709``/``bt2020``; ``full_range`` selects
    full (0..2^b-1) instead of limited (16..235 luma, 16..240 chroma, scaled by 2^(b-8)) range.
    """

    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    bit_depth: int = 8
    matrix: str = "bt709"
    full_range: bool = False

    def __post_init__(self) -> None:
        # PyTorch implements few operations on uint16: hold such samples as int32 (same values)
        for name in ("y", "u", "v"):
            p = getattr(self, name)
            if isinstance(p, torch.Tensor) and p.dtype == torch.uint16:
                setattr(self, name, p.to(torch.int32))
        validate_yuv420(self)

    @classmethod
    def from_nv12(cls, y: torch.Tensor, uv: torch.Tensor, **kwargs) -> "YUV420Frames":
        """NV12/P010-style input: ``uv`` ``(T, ceil(H/2), ceil(W/2), 2)`` interleaved (no copy)."""
        if uv.ndim != 4 or uv.shape[-1] != 2:
            raise InvalidVideoInput(
                f"NV12 chroma must have shape (T, H/2, W/2, 2), got {tuple(uv.shape)}; "
                "pass interleaved UV samples as the last dimension")
        return cls(y, uv[..., 0], uv[..., 1], **kwargs)

    @property
    def num_frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.y.shape[1]), int(self.y.shape[2])

    @property
    def device(self) -> torch.device:
        return self.y.device

    def select(self, indices: torch.Tensor) -> "YUV420Frames":
        idx = indices.to(self.y.device)
        return YUV420Frames(self.y.index_select(0, idx), self.u.index_select(0, idx),
                            self.v.index_select(0, idx), self.bit_depth, self.matrix, bool(self.full_range))

    def to(self, device: torch.device | str) -> "YUV420Frames":
        mv = lambda p: p.to(device, non_blocking=True)  # noqa: E731
        return YUV420Frames(mv(self.y), mv(self.u), mv(self.v), self.bit_depth, self.matrix, self.full_range)


Frames = Union[RGBFrames, YUV420Frames]


def check_tensor_storage(x: torch.Tensor, what: str) -> None:
    """Reject what holds no readable pixels: a non-tensor, a sparse or other non-strided layout, a meta tensor."""
    if not isinstance(x, torch.Tensor):
        hint = "; convert it with torch.from_numpy" if type(x).__module__ == "numpy" else ""
        raise InvalidVideoInput(f"{what} must be a torch.Tensor, got {type(x).__name__}{hint}")
    if x.layout != torch.strided:
        raise InvalidVideoInput(f"{what} is a {x.layout} tensor; pass dense frames (x.to_dense())")
    if x.is_meta:
        raise InvalidVideoInput(f"{what} is a meta tensor, which holds no pixel values; pass real frames")


def check_frame_dtype(dtype: torch.dtype, what: str) -> None:
    """Frames are uint8 (0-255) or floating point (0-1); anything else names the conversion."""
    if dtype == torch.uint8 or dtype.is_floating_point:
        return
    raise InvalidVideoInput(f"{what} has dtype {dtype}; frames must be uint8 (0-255) or floating point "
                            "in [0, 1]: convert with x.to(torch.uint8) for 0-255 values or x.float() / 255")


def check_float_values(x: torch.Tensor, what: str) -> None:
    """Reject NaN/Inf and values outside ``[0, 1]`` in a floating-point video tensor (any float dtype)."""
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


def check_frame_count_and_size(t: int, h: int, w: int, what: str) -> None:
    if t == 0:
        raise InvalidVideoInput(f"{what} has zero frames; pass at least one frame")
    if h == 0 or w == 0:
        raise InvalidVideoInput(f"{what} has an empty frame size {h}x{w}")


def validate_rgb(x: torch.Tensor, what: str) -> None:
    """Check channels-last RGB frames ``(T, H, W, 3)``; raise :class:`InvalidVideoInput` naming the fix."""
    check_tensor_storage(x, what)
    if x.ndim != 4:
        raise InvalidVideoInput(f"{what} has shape {tuple(x.shape)}; expected (T, H, W, 3) channels-last frames "
                                "(add a leading frame dimension for one image)")
    if x.shape[-1] != 3:
        hint = ": it looks channels-first, use x.permute(0, 2, 3, 1)" if x.shape[1] == 3 else ""
        raise InvalidVideoInput(f"{what} has shape {tuple(x.shape)}; it must have 3 (RGB) channels last{hint}")
    check_frame_dtype(x.dtype, what)
    check_frame_count_and_size(x.shape[0], x.shape[1], x.shape[2], what)
    if x.is_floating_point():
        check_float_values(x, what)


def validate_yuv420(f: YUV420Frames) -> None:
    """Check shapes, dtypes, bit depth, matrix, range flag and sample range; raise :class:`InvalidVideoInput`."""
    for name, p in (("y", f.y), ("u", f.u), ("v", f.v)):
        check_tensor_storage(p, f"YUV plane {name}")
        if p.ndim != 3:
            raise InvalidVideoInput(f"YUV plane {name} must have shape (T, H, W), got {tuple(p.shape)}; "
                                    "add a leading frame dimension for a single frame")
        if p.dtype not in _INT_DTYPES:
            raise InvalidVideoInput(f"YUV plane {name} has dtype {p.dtype}; planes hold integer samples "
                                    "(uint8 for 8-bit, int16/int32/uint16 for 10-bit)")
    if not isinstance(f.matrix, str) or f.matrix not in MATRICES:
        raise InvalidVideoInput(f"unknown colour matrix {f.matrix!r}; use one of {MATRICES}")
    if isinstance(f.bit_depth, bool) or not isinstance(f.bit_depth, numbers.Integral):
        raise InvalidVideoInput(f"bit_depth must be an integer number of bits (8-16), got {f.bit_depth!r}")
    if not 8 <= int(f.bit_depth) <= 16:
        raise InvalidVideoInput(f"bit_depth must be between 8 and 16, got {f.bit_depth}")
    if not isinstance(f.full_range, (bool, np.bool_)):
        raise InvalidVideoInput(f"full_range must be True (full range) or False (limited range), got {f.full_range!r}")
    if f.bit_depth > 8 and f.y.dtype == torch.uint8:
        raise InvalidVideoInput(f"{f.bit_depth}-bit samples cannot be held in uint8 planes; "
                                "pass int16/uint16 planes or set bit_depth=8")
    t, h, w = f.y.shape
    if t == 0 or h == 0 or w == 0:
        raise InvalidVideoInput(f"YUV frames are empty: y plane has shape {tuple(f.y.shape)}")
    ch, cw = (h + 1) // 2, (w + 1) // 2
    for name, p in (("u", f.u), ("v", f.v)):
        if tuple(p.shape) != (t, ch, cw):
            raise InvalidVideoInput(
                f"4:2:0 chroma plane {name} must have shape (T, ceil(H/2), ceil(W/2)) = {(t, ch, cw)}, "
                f"got {tuple(p.shape)}; for 4:4:4 or 4:2:2 material convert to RGB first")
    if len({f.y.device, f.u.device, f.v.device}) != 1:
        raise InvalidVideoInput("YUV planes are on different devices; move them to one device")
    top = (1 << int(f.bit_depth)) - 1
    for name, p in (("y", f.y), ("u", f.u), ("v", f.v)):
        if p.dtype != torch.uint8 or top != 255:
            lo, hi = int(p.min()), int(p.max())
            if lo < 0 or hi > top:
                raise InvalidVideoInput(
                    f"YUV plane {name} holds samples in [{lo}, {hi}], outside the {f.bit_depth}-bit range "
                    f"[0, {top}]; check bit_depth (10-bit samples are 0..1023, not shifted to 16 bits)")
