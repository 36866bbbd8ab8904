"""Resampling tables for the resize kernels (host side, no Triton needed).

The global view and the LMM layouts are defined by ``F.interpolate(..., antialias=True,
align_corners=False)`` (see :func:`vqametric.sampling.reference.resize`). PyTorch implements that
as a separable filter: for every output index ``i`` a window of source indices
``[xmin, xmin + xsize)`` and normalised weights. :func:`aa_weights` recomputes those windows and
weights on the host with the same formulas and the same float32/float64 mix as PyTorch's CPU
kernel (``_compute_indices_min_size_weights_aa`` in ``aten/src/ATen/native/cpu/UpSampleKernel.cpp``),
so that the kernels differ from the reference only by the order of float32 additions (and by
fused multiply-adds on GPUs).

Filters: ``bilinear`` is the triangle ``max(0, 1 - |x|)`` (support 1); ``bicubic`` is Keys' cubic
with ``a = -0.5`` (support 2): with ``antialias=True`` PyTorch uses the PIL cubic, not the
``a = -0.75`` of its non-antialiased bicubic. When downscaling by ``s`` the support is stretched
by ``s``; when upscaling the filters are the plain interpolation kernels.

The global view of YUV 4:2:0 frames resamples luma and chroma separately
(:func:`vqametric.sampling.reference.yuv420_resized_rgb`): :func:`chroma_aa_weights` gives the
chroma plane's windows (``ceil(n/2)`` samples resized to the output size), and
:func:`planar_tables` stacks the luma and chroma tables of one axis into the single table the
resize kernel reads.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

_F32 = np.float32


def _fma(a, b, c) -> np.ndarray:
    """float32 ``a * b + c`` with one rounding (the product of two float32 is exact in float64)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(_F32)


def _filter(x: np.ndarray, mode: str) -> np.ndarray:
    """The antialiasing filter at float32 ``x`` (float32 arithmetic, as PyTorch's ``aa_filter``)."""
    x = np.abs(x.astype(_F32))
    if mode == "bilinear":
        return np.where(x < _F32(1.0), _F32(1.0) - x, _F32(0.0)).astype(_F32)
    # Keys' cubic, a = -0.5, evaluated with fused multiply-adds as PyTorch's compiled CPU kernel
    # does (matches its weights to the last bit on the builds we checked; otherwise within 1 ulp)
    a = _F32(-0.5)
    near = _fma(_fma(a + _F32(2.0), x, -(a + _F32(3.0))) * x, x, _F32(1.0))
    far = _fma(_fma(_fma(a, x, -_F32(5.0) * a), x, _F32(8.0) * a), x, -_F32(4.0) * a)
    return np.where(x < _F32(1.0), near, np.where(x < _F32(2.0), far, _F32(0.0))).astype(_F32)


def aa_weights_numpy(in_size: int, out_size: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Antialiased resampling windows of one axis.

    Returns ``xmin`` (int32 ``(out,)``), ``xsize`` (int32 ``(out,)``) and ``weights`` (float32
    ``(out, K)``, zero beyond ``xsize``), ``K`` being PyTorch's ``max_interp_size``.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    if in_size < 1 or out_size < 1:
        raise ValueError(f"cannot resample {in_size} samples to {out_size}")
    interp_size = 2 if mode == "bilinear" else 4
    scale = _F32(in_size) / _F32(out_size)  # area_pixel_compute_scale<float>
    if scale >= 1.0:
        support = _F32((interp_size * 0.5) * float(scale))
        invscale = _F32(1.0 / float(scale))
    else:
        support = _F32(interp_size * 0.5)
        invscale = _F32(1.0)
    k = int(math.ceil(float(support))) * 2 + 1
    i = np.arange(out_size, dtype=np.float64)
    center = (float(scale) * (i + 0.5)).astype(_F32)
    lo = (center - support).astype(np.float64) + 0.5
    hi = (center + support).astype(np.float64) + 0.5
    xmin = np.maximum(np.trunc(lo).astype(np.int64), 0)
    xsize = np.minimum(np.trunc(hi).astype(np.int64), in_size) - xmin
    xsize = np.clip(xsize, 0, k)
    j = np.arange(k, dtype=np.int64)
    # (j + xmin - center) in float32, + 0.5 and * invscale in float64, then the filter in float32
    d = (j[None, :] + xmin[:, None]).astype(_F32) - center[:, None]
    arg = ((d.astype(np.float64) + 0.5) * float(invscale)).astype(_F32)
    w = _filter(arg, mode)
    valid = j[None, :] < xsize[:, None]
    w = np.where(valid, w, _F32(0.0)).astype(_F32)
    total = np.zeros(out_size, dtype=_F32)
    for jj in range(k):  # sequential float32 sum, as PyTorch does
        total = (total + w[:, jj]).astype(_F32)
    safe = np.where(total != 0.0, total, _F32(1.0)).astype(_F32)
    w = np.where(total[:, None] != 0.0, (w / safe[:, None]).astype(_F32), w).astype(_F32)
    return xmin.astype(np.int32), xsize.astype(np.int32), np.ascontiguousarray(w)


def _probe(n_in: int, n_out: int, mode: str, antialias: bool, device: torch.device) -> torch.Tensor:
    """PyTorch's own resampling matrix ``(n_out, n_in)`` on ``device``: one-hot rows resized along
    the width (``1 * w`` and ``0 * w`` are exact, so every entry is the weight PyTorch uses)."""
    dense = torch.empty((n_out, n_in), dtype=torch.float32, device=device)
    chunk = max(1, min(n_in, (1 << 22) // max(n_in, 1)))
    for c0 in range(0, n_in, chunk):
        c = min(chunk, n_in - c0)
        x = torch.zeros((1, c, 1, n_in), dtype=torch.float32, device=device)
        x[0, torch.arange(c, device=device), 0, torch.arange(c0, c0 + c, device=device)] = 1.0
        y = F.interpolate(x, size=(1, n_out), mode=mode, align_corners=False, antialias=antialias)
        dense[:, c0:c0 + c] = y[0, :, 0, :].T
    return dense


def _windows(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Non-zero window of every row of a resampling matrix: ``(xmin, xsize, weights (n_out, K), K)``."""
    n_out, n_in = dense.shape
    nz = dense != 0
    any_nz = nz.any(dim=1)
    idx = torch.arange(n_in, device=dense.device)
    first = torch.where(nz, idx, n_in).amin(dim=1)
    last = torch.where(nz, idx, -1).amax(dim=1)
    xmin = torch.where(any_nz, first, 0)
    xsize = torch.where(any_nz, last - first + 1, 0)
    k = max(1, int(xsize.max()))
    cols = xmin[:, None] + torch.arange(k, device=dense.device)[None, :]
    inside = torch.arange(k, device=dense.device)[None, :] < xsize[:, None]
    w = torch.where(inside, dense.gather(1, cols.clamp(max=n_in - 1)), torch.zeros((), device=dense.device))
    return xmin.to(torch.int32).contiguous(), xsize.to(torch.int32).contiguous(), w.contiguous(), k


@functools.lru_cache(maxsize=256)
def _aa_weights_cached(in_size: int, out_size: int, mode: str, device: str):
    return _windows(_probe(in_size, out_size, mode, True, torch.device(device)))


def aa_weights(in_size: int, out_size: int, mode: str, device: torch.device | str = "cpu"):
    """Antialiased resampling windows of one axis as used by ``F.interpolate(..., antialias=True)``
    on ``device``: ``(xmin int32 (out,), xsize int32 (out,), weights float32 (out, K), K)`` (cached).

    The weights are read back from PyTorch itself on the target device (see :func:`_probe`), so
    they are the reference's to the last bit whatever the build or device;
    :func:`aa_weights_numpy` documents (and the tests check) how they are computed.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    return _aa_weights_cached(int(in_size), int(out_size), str(mode), str(torch.device(device)))


def chroma_aa_weights(luma_size: int, out_size: int, mode: str, device: torch.device | str = "cpu"):
    """Like :func:`aa_weights` for the 4:2:0 chroma plane of an axis of ``luma_size`` luma samples:
    its ``ceil(luma_size / 2)`` samples resized to ``out_size``, as
    :func:`vqametric.sampling.reference.yuv420_resized_rgb` resizes them (cached)."""
    return aa_weights((int(luma_size) + 1) // 2, out_size, mode, device)


@functools.lru_cache(maxsize=256)
def _planar_tables_cached(luma_size: int, out_size: int, mode: str, device: str):
    lmin, lsize, lw, lk = aa_weights(luma_size, out_size, mode, device)
    cmin, csize, cw, ck = chroma_aa_weights(luma_size, out_size, mode, device)
    k = max(lk, ck)
    w = torch.cat((F.pad(lw, (0, k - lk)), F.pad(cw, (0, k - ck))))
    return torch.cat((lmin, cmin)).contiguous(), torch.cat((lsize, csize)).contiguous(), w.contiguous(), k


def planar_tables(luma_size: int, out_size: int, mode: str, device: torch.device | str = "cpu"):
    """Luma and chroma windows of one axis in one table, for the resize kernel's planar YUV mode:
    ``(xmin int32 (2*out,), xsize int32 (2*out,), weights float32 (2*out, K), K)`` with the luma
    windows (:func:`aa_weights`) in rows ``[0, out)`` and the chroma windows
    (:func:`chroma_aa_weights`) in rows ``[out, 2*out)``, weights zero-padded to the larger ``K``
    (cached)."""
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    return _planar_tables_cached(int(luma_size), int(out_size), str(mode), str(torch.device(device)))


@functools.lru_cache(maxsize=256)
def _linear_taps_cached(in_size: int, out_size: int, device: str):
    xmin, xsize, w, k = _windows(_probe(in_size, out_size, "bilinear", False, torch.device(device)))
    if k > 2:
        raise AssertionError(f"a bilinear {in_size}->{out_size} resize has {k} taps")
    w = torch.nn.functional.pad(w, (0, 2 - k))
    i1 = (xmin + (xsize - 1).clamp(min=0)).to(torch.int32)
    return xmin, i1.contiguous(), w[:, 0].contiguous(), w[:, 1].contiguous()


def linear_taps(in_size: int, out_size: int, device: torch.device | str = "cpu"):
    """Plain (not antialiased, ``align_corners=False``) bilinear taps of one axis, as PyTorch computes
    them on ``device``: ``(i0, i1, w0, w1)`` with output ``i`` = ``w0[i] * x[i0[i]] + w1[i] * x[i1[i]]``
    (``w1 = 0``, ``i1 = i0`` where one tap suffices). Cached."""
    return _linear_taps_cached(int(in_size), int(out_size), str(torch.device(device)))
