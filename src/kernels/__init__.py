"""Fused preprocessing kernels (Triton), imported as ``vqametric.kernels``.

One pass from decoded frames to model-ready tensors: every kernel reads the frames as decoded
(uint8/float RGB, I420 or NV12 YUV 4:2:0 at 8 or 10 bits, any strides), converts the samples it
touches to RGB in registers, gathers or resamples, normalises and writes the output dtype. The
global view of :func:`preprocess` on YUV frames resamples first and converts afterwards, as its
reference does: Y with the luma windows, U and V with the chroma plane's own windows, then RGB
from the resampled planes, clamped to [0, 1]. No float copy of a frame is ever made.

Each kernel's meaning is defined by a plain-PyTorch reference, and the kernels return the same
keys, shapes and dtypes:

* :func:`preprocess` -> :func:`vqametric.sampling.reference.preprocess_reference`
  (``fragments`` and ``global_view``);
* :func:`internvl_tiles` -> :func:`vqametric.sampling.layouts.internvl_tiles_reference`;
* :func:`qwen_vl_patches` -> :func:`vqametric.sampling.layouts.qwen_vl_patches_reference`.

The kernels run on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (set before
Triton is first imported; slow, for tests). Anything they cannot take (no Triton, a CPU device
without the interpreter, frames that require grad, offsets beyond int32 within one frame) is
handed to the reference, so the result is always the reference's. They are inference-only.
"""
from __future__ import annotations

import contextlib
import functools
import os

import torch

from ..errors import InvalidVideoInput
from ..io.frames import Frames, RGBFrames, YUV420Frames
from ..sampling.layouts import IMAGENET_MEAN, IMAGENET_STD, QWEN25_VL, QwenVLLayout, internvl_tiles_reference
from ..sampling.layouts import qwen_vl_patches_reference
from ..sampling.plan import SamplingPlan
from ..sampling.reference import preprocess_reference, yuv_coefficients
from .tables import aa_weights, linear_taps, planar_tables

__all__ = ["is_available", "runs_on", "preprocess", "internvl_tiles", "qwen_vl_patches"]

_MAX_GRID = 65535  # CUDA limit of grid dimensions 1 and 2; frames are launched in chunks of this
_OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip() not in ("", "0")


def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def is_available() -> bool:
    """True when Triton imports and there is somewhere to run: a CUDA device, or
    ``TRITON_INTERPRET=1`` (CPU tensors through the interpreter)."""
    return _triton_importable() and (torch.cuda.is_available() or _interpret())


def runs_on(device: torch.device | str) -> bool:
    """True when the kernels (not the reference fallback) will run for outputs on ``device``."""
    device = torch.device(device)
    if not _triton_importable():
        return False
    if device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and _interpret()


def _kernels():
    from . import _triton
    return _triton


class _Source:
    """Pointers, strides and colour constants of a clip, moved to the compute device."""

    def __init__(self, frames: Frames, device: torch.device):
        if isinstance(frames, RGBFrames):
            d = frames.data
            if d.ndim != 4 or d.shape[-1] != 3:
                raise InvalidVideoInput(f"RGB frames must have shape (T, H, W, 3), got {tuple(d.shape)}")
            if not (d.dtype == torch.uint8 or d.is_floating_point()):
                raise InvalidVideoInput(f"RGB frames must be uint8 or floating point, got {d.dtype}")
            d = d.to(device)
            self.fmt, self.rgb_u8 = 0, d.dtype == torch.uint8
            self.planes = (d, d, d)
            st = d.stride()
            self.strides = (st[0], st[1], st[2], st[3], 0, 0, 0, 0, 0, 0)
            self.coeffs = (0.0,) * 8
            self.t, self.h, self.w = int(d.shape[0]), int(d.shape[1]), int(d.shape[2])
            extents = [(d.shape[1] - 1) * st[1] + (d.shape[2] - 1) * st[2] + 2 * st[3]]
        else:
            assert isinstance(frames, YUV420Frames)
            y, u, v = (p.to(device) for p in (frames.y, frames.u, frames.v))
            self.fmt, self.rgb_u8 = 1, False
            self.planes = (y, u, v)
            self.strides = (y.stride(0), y.stride(1), y.stride(2), 0,
                            u.stride(0), u.stride(1), u.stride(2), v.stride(0), v.stride(1), v.stride(2))
            self.coeffs = tuple(float(c) for c in yuv_coefficients(int(frames.bit_depth), frames.matrix,
                                                                    bool(frames.full_range)))
            self.t, self.h, self.w = (int(s) for s in y.shape)
            extents = [(p.shape[1] - 1) * p.stride(1) + (p.shape[2] - 1) * p.stride(2) for p in (y, u, v)]
        # offsets inside one frame are int32 in the kernels; frame offsets are int64
        self.fits = max(extents) < 2 ** 31 - 1

    def args(self):
        return (*self.planes, *self.strides)


def _usable(frames: Frames, device: torch.device) -> bool:
    if not runs_on(device):
        return False
    if isinstance(frames, RGBFrames) and frames.data.requires_grad:
        return False
    return True


def _check_out(buf: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
               name: str) -> torch.Tensor:
    if buf is None:
        return torch.empty(shape, dtype=dtype, device=device)
    if tuple(buf.shape) != tuple(shape) or buf.dtype != dtype or not buf.is_contiguous() \
            or buf.device.type != device.type:
        raise ValueError(f"out[{name!r}] must be a contiguous {dtype} tensor of shape {tuple(shape)} on "
                         f"{device}, got {buf.dtype} {tuple(buf.shape)} on {buf.device}")
    return buf


#: tile sizes: None picks them by where the kernels run; tests force "gpu" or "interpreter"
_TILING: str | None = None


def _tiling() -> str:
    if _TILING is not None:
        return _TILING
    return "interpreter" if _interpret() else "gpu"


def _resize_blocks(oh: int, ow: int, kx: int) -> tuple[int, int, int, int]:
    """``(BY, BX, KC, num_warps)`` of the resize kernel."""
    if _tiling() == "interpreter":  # few, large programs: the interpreter's cost is per program and step
        return min(_next_pow2(oh), 32), min(_next_pow2(ow), 256), min(16, _next_pow2(kx)), 4
    # 8x64 output tiles, 8 taps per gather step, 8 warps: 71 registers per thread for sm_90
    # (ptxas), i.e. 3 resident programs per SM; not tuned on hardware yet
    return min(_next_pow2(oh), 8), min(_next_pow2(ow), 64), min(8, _next_pow2(kx)), 8


def _fragment_block(n: int) -> int:
    if _tiling() == "interpreter":
        return min(_next_pow2(n * n), 4096)
    return 256


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def _on(device: torch.device):
    """Launch on ``device`` (Triton launches on the current CUDA device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


@functools.lru_cache(maxsize=64)
def _boxes(tops: tuple[int, ...], lefts: tuple[int, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    dev = torch.device(device)
    return (torch.tensor(tops, dtype=torch.int32, device=dev), torch.tensor(lefts, dtype=torch.int32, device=dev))


def _launch_resize(src: _Source, out: torch.Tensor, oh: int, ow: int, t_out: int, mode: str, mean, std,
                   clamp: bool, layout: int, out_strides=(0, 0, 0, 0), patch: int = 1, merge: int = 1,
                   tpatch: int = 1, planar: bool = False) -> None:
    """``planar``: YUV frames are resampled plane by plane and converted afterwards (``FMT`` 2,
    the global view's definition); otherwise each sample is converted as it is read."""
    k = _kernels()
    dev = out.device
    fmt = src.fmt
    if planar and fmt == 1:
        fmt, clamp = 2, True
        ymin, ysize, wy, ky = planar_tables(src.h, oh, mode, dev)
        xmin, xsize, wx, kx = planar_tables(src.w, ow, mode, dev)
    else:
        ymin, ysize, wy, ky = aa_weights(src.h, oh, mode, dev)
        xmin, xsize, wx, kx = aa_weights(src.w, ow, mode, dev)
    by, bx, kc, warps = _resize_blocks(oh, ow, kx)
    for t0 in range(0, t_out, _MAX_GRID):
        nt = min(_MAX_GRID, t_out - t0)
        # frames t0.. are addressed by offsetting the frame index inside the kernel through T_SRC/t
        grid = (_cdiv(ow, bx), _cdiv(oh, by), nt)
        with _on(dev):
            k._resize_kernel[grid](
                out, *src.args(), src.t, ymin, ysize, wy, xmin, xsize, wx, oh, ow, *src.coeffs,
                *(float(m) for m in mean), *(float(s) for s in std), *out_strides, t0,
                FMT=fmt, RGB_U8=src.rgb_u8, KY=ky, KX=kx, CLAMP=clamp, LAYOUT=layout, PATCH=patch,
                MERGE=merge, TPATCH=tpatch, KC=kc, BY=by, BX=bx, num_warps=warps)


def _launch_fragments(src: _Source, out: torch.Tensor, plan: SamplingPlan) -> None:
    k = _kernels()
    frag = plan.fragments
    dev = out.device
    n = frag.grid * frag.patch
    tops, lefts = _boxes(tuple(frag.tops), tuple(frag.lefts), str(dev))
    if frag.resize_to is not None:
        upscale = True
        taps = (*linear_taps(src.h, frag.resize_to[0], dev), *linear_taps(src.w, frag.resize_to[1], dev))
    else:
        upscale = False
        taps = (tops,) * 8  # unused
        if max(frag.tops) + frag.patch > src.h or max(frag.lefts) + frag.patch > src.w:
            raise InvalidVideoInput(f"the plan's fragments do not fit frames of {src.h}x{src.w}; "
                                    "make the plan for the frames' size")
    block = _fragment_block(n)
    for t0 in range(0, src.t, _MAX_GRID):
        nt = min(_MAX_GRID, src.t - t0)
        grid = (_cdiv(n * n, block), nt)
        with _on(dev):
            k._fragments_kernel[grid](
                out, *src.args(), tops, lefts, *taps, *src.coeffs,
                *(float(m) for m in plan.mean), *(float(s) for s in plan.std), t0,
                FMT=src.fmt, RGB_U8=src.rgb_u8, GRID=frag.grid, PATCH=frag.patch, UPSCALE=upscale,
                BLOCK=block, num_warps=4)


def preprocess(frames: Frames, plan: SamplingPlan, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None, *,
               out: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Fused :func:`~vqametric.sampling.reference.preprocess_reference`.

    Returns ``{"fragments": (T, 3, G*P, G*P), "global_view": (T, 3, S, S)}`` (the views the plan
    enables) in ``dtype`` on ``device`` (default: the frames' device). ``out`` may hold
    preallocated contiguous buffers for some of the keys (they are filled and returned).
    """
    device = torch.device(device) if device is not None else frames.device
    if dtype not in _OUT_DTYPES:
        raise ValueError(f"dtype must be one of {_OUT_DTYPES}, got {dtype}")
    out = dict(out or {})
    src = _Source(frames, device) if _usable(frames, device) else None
    if src is None or not src.fits:
        res = preprocess_reference(frames, plan, dtype=dtype, device=device)
        for key, buf in out.items():
            if key in res:
                res[key] = buf.copy_(res[key])
        return res
    t = src.t
    if t == 0:  # empty clip: whatever the reference returns for it
        return preprocess_reference(frames, plan, dtype=dtype, device=device)
    res: dict[str, torch.Tensor] = {}
    if plan.fragments is not None:
        n = plan.fragments.out_size
        buf = _check_out(out.get("fragments"), (t, 3, n, n), dtype, src.planes[0].device, "fragments")
        _launch_fragments(src, buf, plan)
        res["fragments"] = buf
    if plan.global_size > 0:
        s = plan.global_size
        buf = _check_out(out.get("global_view"), (t, 3, s, s), dtype, src.planes[0].device, "global_view")
        # YUV: resample the planes, then convert (the reference's definition of the global view)
        _launch_resize(src, buf, s, s, t, plan.interpolation, plan.mean, plan.std, clamp=False, layout=0,
                       out_strides=buf.stride(), planar=True)
        res["global_view"] = buf
    return res


def internvl_tiles(frames: Frames, size: int = 448, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None, *, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """Fused :func:`~vqametric.sampling.layouts.internvl_tiles_reference`: ``(T, 3, size, size)``."""
    device = torch.device(device) if device is not None else frames.device
    if dtype not in _OUT_DTYPES:
        raise ValueError(f"dtype must be one of {_OUT_DTYPES}, got {dtype}")
    src = _Source(frames, device) if _usable(frames, device) else None
    if src is None or not src.fits or src.t == 0 or size < 1:
        res = internvl_tiles_reference(frames, size, dtype=dtype, device=device, mean=mean, std=std)
        return out.copy_(res) if out is not None else res
    buf = _check_out(out, (src.t, 3, size, size), dtype, src.planes[0].device, "tiles")
    _launch_resize(src, buf, size, size, src.t, "bicubic", mean, std, clamp=True, layout=0,
                   out_strides=buf.stride())
    return buf


def qwen_vl_patches(frames: Frames, layout: QwenVLLayout = QWEN25_VL, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None, *,
                    out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused :func:`~vqametric.sampling.layouts.qwen_vl_patches_reference`:
    ``(pixel_values (grid_t*grid_h*grid_w, 3*tp*p*p), grid_thw int64 (1, 3))``.

    The kernel writes each resized, normalised pixel straight to its place in the patch layout
    (the padding frames re-read the last source frame)."""
    device = torch.device(device) if device is not None else frames.device
    if dtype not in _OUT_DTYPES:
        raise ValueError(f"dtype must be one of {_OUT_DTYPES}, got {dtype}")
    src = _Source(frames, device) if _usable(frames, device) else None
    if src is None or not src.fits or src.t == 0:
        pv, grid = qwen_vl_patches_reference(frames, layout, dtype=dtype, device=device)
        return (out.copy_(pv) if out is not None else pv), grid
    oh, ow = layout.resized_size(src.h, src.w)
    gt, gh, gw = layout.grid_thw(src.t, src.h, src.w)
    tp = layout.temporal_patch_size
    dev = src.planes[0].device
    buf = _check_out(out, (gt * gh * gw, layout.patch_dim), dtype, dev, "pixel_values")
    _launch_resize(src, buf, oh, ow, gt * tp, "bicubic", layout.mean, layout.std, clamp=True, layout=1,
                   patch=layout.patch_size, merge=layout.merge_size, tpatch=tp)
    grid = torch.tensor([[gt, gh, gw]], dtype=torch.int64, device=dev)
    return buf, grid
