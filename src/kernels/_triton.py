"""The Triton kernels. Imported lazily by :mod:`vqametric.kernels` (set ``TRITON_INTERPRET=1``
before this module is first imported to run them on CPU tensors).

Every kernel reads the source frames directly (RGB interleaved or YUV 4:2:0 planes, any strides),
converts to RGB float32 in registers (each sample as it is read, or, for the YUV global view, the
resampled planes), resamples, normalises and stores the output dtype: there is no float copy of
the frames. Block pointers are not used (triton 3.9 here); all addressing is pointer arithmetic
with masks.

Source formats (``FMT``):

* ``0``: RGB, ``p0`` is the ``(T, H, W, 3)`` tensor (strides ``s0t, s0h, s0w, s0c``), uint8
  (``RGB_U8``: divided by 255) or floating point (used as is);
* ``1``: YUV 4:2:0, ``p0`` = Y ``(T, H, W)``, ``p1`` = U, ``p2`` = V ``(T, ceil(H/2), ceil(W/2))``
  with their own strides (NV12 views have an element stride of 2); the affine constants come from
  :func:`vqametric.sampling.reference.yuv_coefficients`; each sample is converted to RGB (chroma
  replicated over its 2x2 luma block) and clamped to [0, 1] as it is read, then resampled;
* ``2`` (:func:`_resize_kernel` only, the fast layout's global view): the same YUV 4:2:0 planes,
  resampled plane by plane, then converted: Y with the luma windows, U and V with the chroma
  windows, and the resampled planes converted to RGB and clamped to [0, 1]
  (:func:`vqametric.sampling.reference.yuv420_resized_rgb`).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _yuv_to_rgb(yv, uv, vv, y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u):
    """Float32 Y, U, V samples (as stored, or resampled) -> R, G, B, not clamped (the affine
    constants of :func:`vqametric.sampling.reference.yuv_coefficients`)."""
    yf = (yv - y_off) * y_scale
    uf = (uv - c_off) * c_scale
    vf = (vv - c_off) * c_scale
    return yf + r_v * vf, yf + (g_u * uf + g_v * vf), yf + b_u * uf


@triton.jit
def _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, yy, xx, mask,
              y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u,
              FMT: tl.constexpr, RGB_U8: tl.constexpr):
    """RGB float32 of the source pixels ``(yy, xx)`` of one frame (``f*``: frame base pointers)."""
    if FMT == 0:
        base = f0 + yy * s0h + xx * s0w
        r = tl.load(base, mask=mask, other=0).to(tl.float32)
        g = tl.load(base + s0c, mask=mask, other=0).to(tl.float32)
        b = tl.load(base + 2 * s0c, mask=mask, other=0).to(tl.float32)
        if RGB_U8:
            r = tl.div_rn(r, 255.0)
            g = tl.div_rn(g, 255.0)
            b = tl.div_rn(b, 255.0)
    else:
        cy = yy // 2
        cx = xx // 2
        yv = tl.load(f0 + yy * s0h + xx * s0w, mask=mask, other=0).to(tl.float32)
        uv = tl.load(f1 + cy * s1h + cx * s1w, mask=mask, other=0).to(tl.float32)
        vv = tl.load(f2 + cy * s2h + cx * s2w, mask=mask, other=0).to(tl.float32)
        r, g, b = _yuv_to_rgb(yv, uv, vv, y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u)
        r = tl.minimum(tl.maximum(r, 0.0), 1.0)
        g = tl.minimum(tl.maximum(g, 0.0), 1.0)
        b = tl.minimum(tl.maximum(b, 0.0), 1.0)
    return r, g, b


@triton.jit
def _fragments_kernel(out, p0, p1, p2, s0t, s0h, s0w, s0c, s1t, s1h, s1w, s2t, s2h, s2w,
                      tops, lefts, ty0, ty1, twy0, twy1, tx0, tx1, twx0, twx1,
                      y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u,
                      m0, m1, m2, sd0, sd1, sd2, T0,
                      FMT: tl.constexpr, RGB_U8: tl.constexpr, GRID: tl.constexpr, PATCH: tl.constexpr,
                      UPSCALE: tl.constexpr, BLOCK: tl.constexpr):
    """FAST-VQA fragments: output ``(T, 3, N, N)`` contiguous, ``N = GRID * PATCH``.

    Output pixel ``(i, j)`` of cell ``k = (i // PATCH) * GRID + j // PATCH`` is source pixel
    ``(tops[k] + i % PATCH, lefts[k] + j % PATCH)`` of the frame, or with ``UPSCALE`` of the frame
    bilinearly upscaled (``align_corners=False``) to the plan's ``resize_to``, computed on the fly
    from its 4 source neighbours: upscaled row ``r`` is ``twy0[r] * row ty0[r] + twy1[r] * row
    ty1[r]`` (likewise for columns), see :func:`vqametric.kernels.tables.linear_taps`.
    """
    N: tl.constexpr = GRID * PATCH
    pid = tl.program_id(0)
    t = T0 + tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N * N
    orow = offs // N
    ocol = offs % N
    cell = (orow // PATCH) * GRID + ocol // PATCH
    sr = tl.load(tops + cell, mask=mask, other=0) + orow % PATCH
    sc = tl.load(lefts + cell, mask=mask, other=0) + ocol % PATCH
    f0 = p0 + t * s0t
    f1 = p1 + t * s1t
    f2 = p2 + t * s2t
    if UPSCALE:
        # bilinear taps of the upscaled row sr / column sc (tables read back from PyTorch)
        y0 = tl.load(ty0 + sr, mask=mask, other=0)
        y1 = tl.load(ty1 + sr, mask=mask, other=0)
        wy0 = tl.load(twy0 + sr, mask=mask, other=0.0)
        ly = tl.load(twy1 + sr, mask=mask, other=0.0)
        x0 = tl.load(tx0 + sc, mask=mask, other=0)
        x1 = tl.load(tx1 + sc, mask=mask, other=0)
        wx0 = tl.load(twx0 + sc, mask=mask, other=0.0)
        lx = tl.load(twx1 + sc, mask=mask, other=0.0)
        r00, g00, b00 = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, y0, x0, mask,
                                  y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
        r01, g01, b01 = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, y0, x1, mask,
                                  y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
        r10, g10, b10 = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, y1, x0, mask,
                                  y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
        r11, g11, b11 = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, y1, x1, mask,
                                  y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
        r = (r00 * wx0 + r01 * lx) * wy0 + (r10 * wx0 + r11 * lx) * ly
        g = (g00 * wx0 + g01 * lx) * wy0 + (g10 * wx0 + g11 * lx) * ly
        b = (b00 * wx0 + b01 * lx) * wy0 + (b10 * wx0 + b11 * lx) * ly
    else:
        r, g, b = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, sr, sc, mask,
                            y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
    ty = out.dtype.element_ty
    o = out + t * (3 * N * N) + offs
    tl.store(o, tl.div_rn(r - m0, sd0).to(ty), mask=mask)
    tl.store(o + N * N, tl.div_rn(g - m1, sd1).to(ty), mask=mask)
    tl.store(o + 2 * N * N, tl.div_rn(b - m2, sd2).to(ty), mask=mask)


@triton.jit
def _resample_planes(fa, fb, sah, saw, sbh, sbw, ymin, ysize, wy, xmin, xsize, wx, TY0, TX0,
                     oy_c, ox_c, my, mx,
                     TWO: tl.constexpr, KY: tl.constexpr, KX: tl.constexpr, KC: tl.constexpr,
                     BY: tl.constexpr, BX: tl.constexpr):
    """One ``BY x BX`` output tile of a plane (``fa``; with ``TWO`` also of ``fb``, a plane of the
    same size) resampled with the windows in rows ``TY0 + oy`` / ``TX0 + ox`` of the tables:
    float32 samples, not converted. Same order of operations as the RGB path of
    :func:`_resize_kernel` (horizontal pass per source row, ``KC`` taps per step, then the row's
    vertical weight)."""
    ymn = tl.load(ymin + TY0 + oy_c)
    ysz = tl.load(ysize + TY0 + oy_c)
    # source rows of the tile: the union of its rows' windows (not the first row's start and the
    # last row's end: a window is only its non-zero weights, so an output row that falls exactly
    # on a source row has a window of one row, inside its neighbours' windows)
    r_lo = tl.min(ymn, axis=0)
    r_hi = tl.max(ymn + ysz, axis=0)
    xmn = tl.load(xmin + TX0 + ox_c)
    xsz = tl.load(xsize + TX0 + ox_c)
    acc_a = tl.zeros([BY, BX], dtype=tl.float32)
    acc_b = tl.zeros([BY, BX], dtype=tl.float32)
    kc = tl.arange(0, KC)
    for row in range(r_lo, r_hi):
        h_a = tl.zeros([BX], dtype=tl.float32)
        h_b = tl.zeros([BX], dtype=tl.float32)
        for k0 in range(0, KX, KC):
            k2 = k0 + kc[:, None]
            tap = mx[None, :] & (k2 < xsz[None, :])
            wk = tl.load(wx + (TX0 + ox_c[None, :]) * KX + k2, mask=tap, other=0.0)
            xx = xmn[None, :] + k2
            pa = tl.load(fa + row * sah + xx * saw, mask=tap, other=0).to(tl.float32)
            h_a += tl.sum(tl.where(tap, pa * wk, 0.0), axis=0)
            if TWO:
                pb = tl.load(fb + row * sbh + xx * sbw, mask=tap, other=0).to(tl.float32)
                h_b += tl.sum(tl.where(tap, pb * wk, 0.0), axis=0)
        kk = row - ymn
        vy = my & (kk >= 0) & (kk < ysz)
        wyv = tl.load(wy + (TY0 + oy_c) * KY + kk, mask=vy, other=0.0)
        vy2 = vy[:, None]
        wy2 = wyv[:, None]
        acc_a = tl.where(vy2, acc_a + h_a[None, :] * wy2, acc_a)
        if TWO:
            acc_b = tl.where(vy2, acc_b + h_b[None, :] * wy2, acc_b)
    return acc_a, acc_b


@triton.jit
def _resize_kernel(out, p0, p1, p2, s0t, s0h, s0w, s0c, s1t, s1h, s1w, s2t, s2h, s2w, T_SRC,
                   ymin, ysize, wy, xmin, xsize, wx, OH, OW,
                   y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u,
                   m0, m1, m2, sd0, sd1, sd2,
                   o_st, o_sc, o_sh, o_sw, T0,
                   FMT: tl.constexpr, RGB_U8: tl.constexpr, KY: tl.constexpr, KX: tl.constexpr,
                   CLAMP: tl.constexpr, LAYOUT: tl.constexpr, PATCH: tl.constexpr, MERGE: tl.constexpr,
                   TPATCH: tl.constexpr, KC: tl.constexpr, BY: tl.constexpr, BX: tl.constexpr):
    """Separable antialiased resize of whole frames to ``OH x OW``, one ``BY x BX`` output tile
    per program, output frame ``t_out = T0 + program_id(2)`` read from source frame
    ``min(t_out, T_SRC - 1)`` (the Qwen layout repeats the last frame).

    Windows and weights per output row/column come from :mod:`vqametric.kernels.tables`
    (``ymin/ysize/wy`` with ``KY`` taps, ``xmin/xsize/wx`` with ``KX``). For every source row the
    tile's rows touch, the row is resampled horizontally once (``KC`` taps per gather step, each
    step's products summed as a tree, the steps in order) and added, with that row's vertical
    weight, to every output row of the tile whose window holds the row: horizontal pass then
    vertical pass, as PyTorch does, with the intermediate in registers. ``FMT`` 0 and 1 convert
    each source sample to RGB as it is read and resample RGB. ``FMT`` 2 (YUV 4:2:0 planes)
    resamples Y with the luma windows (table rows ``[0, OH)`` / ``[0, OW)``) and U, V with the
    chroma windows (rows ``[OH, 2*OH)`` / ``[OW, 2*OW)``, see
    :func:`vqametric.kernels.tables.planar_tables`), then converts the resampled samples to RGB.
    ``CLAMP`` clamps the RGB to [0, 1] before normalising (always set with ``FMT`` 2).

    ``LAYOUT`` 0 stores ``(t, c, y, x)`` at ``t*o_st + c*o_sc + y*o_sh + x*o_sw``; 1 stores the
    Qwen2-VL patch layout (see :func:`vqametric.sampling.layouts.patchify_qwen`).
    """
    pid_x = tl.program_id(0)
    pid_y = tl.program_id(1)
    t_out = T0 + tl.program_id(2)
    t = tl.minimum(t_out, T_SRC - 1).to(tl.int64)
    oy = pid_y * BY + tl.arange(0, BY)
    ox = pid_x * BX + tl.arange(0, BX)
    my = oy < OH
    mx = ox < OW
    oy_c = tl.minimum(oy, OH - 1)
    ox_c = tl.minimum(ox, OW - 1)
    f0 = p0 + t * s0t
    f1 = p1 + t * s1t
    f2 = p2 + t * s2t
    if FMT == 2:
        acc_y, _unused = _resample_planes(f0, f0, s0h, s0w, s0h, s0w, ymin, ysize, wy, xmin, xsize, wx, 0, 0,
                                          oy_c, ox_c, my, mx,
                                          False, KY, KX, KC, BY, BX)
        acc_u, acc_v = _resample_planes(f1, f2, s1h, s1w, s2h, s2w, ymin, ysize, wy, xmin, xsize, wx, OH, OW,
                                        oy_c, ox_c, my, mx,
                                        True, KY, KX, KC, BY, BX)
        acc_r, acc_g, acc_b = _yuv_to_rgb(acc_y, acc_u, acc_v, y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u)
    else:
        ymn = tl.load(ymin + oy_c)
        ysz = tl.load(ysize + oy_c)
        r_lo = tl.min(ymn, axis=0)  # the union of the tile's row windows, as in _resample_planes
        r_hi = tl.max(ymn + ysz, axis=0)
        xmn = tl.load(xmin + ox_c)
        xsz = tl.load(xsize + ox_c)
        acc_r = tl.zeros([BY, BX], dtype=tl.float32)
        acc_g = tl.zeros([BY, BX], dtype=tl.float32)
        acc_b = tl.zeros([BY, BX], dtype=tl.float32)
        kc = tl.arange(0, KC)
        for row in range(r_lo, r_hi):
            h_r = tl.zeros([BX], dtype=tl.float32)
            h_g = tl.zeros([BX], dtype=tl.float32)
            h_b = tl.zeros([BX], dtype=tl.float32)
            for k0 in range(0, KX, KC):
                # KC taps of every output column at once: a (KC, BX) gather, reduced over the taps
                k2 = k0 + kc[:, None]
                tap = mx[None, :] & (k2 < xsz[None, :])
                wk = tl.load(wx + ox_c[None, :] * KX + k2, mask=tap, other=0.0)
                xx = xmn[None, :] + k2
                rows = tl.zeros([KC, BX], dtype=tl.int32) + row
                pr, pg, pb = _load_rgb(f0, f1, f2, s0h, s0w, s0c, s1h, s1w, s2h, s2w, rows, xx, tap,
                                       y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u, FMT, RGB_U8)
                h_r += tl.sum(tl.where(tap, pr * wk, 0.0), axis=0)
                h_g += tl.sum(tl.where(tap, pg * wk, 0.0), axis=0)
                h_b += tl.sum(tl.where(tap, pb * wk, 0.0), axis=0)
            kk = row - ymn
            vy = my & (kk >= 0) & (kk < ysz)
            wyv = tl.load(wy + oy_c * KY + kk, mask=vy, other=0.0)
            vy2 = vy[:, None]
            wy2 = wyv[:, None]
            acc_r = tl.where(vy2, acc_r + h_r[None, :] * wy2, acc_r)
            acc_g = tl.where(vy2, acc_g + h_g[None, :] * wy2, acc_g)
            acc_b = tl.where(vy2, acc_b + h_b[None, :] * wy2, acc_b)
    if CLAMP:
        acc_r = tl.minimum(tl.maximum(acc_r, 0.0), 1.0)
        acc_g = tl.minimum(tl.maximum(acc_g, 0.0), 1.0)
        acc_b = tl.minimum(tl.maximum(acc_b, 0.0), 1.0)
    ty = out.dtype.element_ty
    m2d = my[:, None] & mx[None, :]
    y2 = oy[:, None]
    x2 = ox[None, :]
    if LAYOUT == 0:
        o = out + t_out.to(tl.int64) * o_st + y2 * o_sh + x2 * o_sw
        step = o_sc
    else:
        # Qwen2-VL: row (gt, bh, bw, mh, mw), column (c, tt, py, px)
        gt = t_out // TPATCH
        tt = t_out % TPATCH
        hy = y2 // PATCH
        hx = x2 // PATCH
        gh2 = (OH // PATCH) // MERGE
        gw2 = (OW // PATCH) // MERGE
        prow = ((gt * gh2 + hy // MERGE) * gw2 + hx // MERGE) * (MERGE * MERGE) \
            + (hy % MERGE) * MERGE + hx % MERGE
        pcol = (tt * PATCH + y2 % PATCH) * PATCH + x2 % PATCH
        o = out + prow.to(tl.int64) * (3 * TPATCH * PATCH * PATCH) + pcol
        step = TPATCH * PATCH * PATCH
    tl.store(o, tl.div_rn(acc_r - m0, sd0).to(ty), mask=m2d)
    tl.store(o + step, tl.div_rn(acc_g - m1, sd1).to(ty), mask=m2d)
    tl.store(o + 2 * step, tl.div_rn(acc_b - m2, sd2).to(ty), mask=m2d)
