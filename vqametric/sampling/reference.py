"""Plain-PyTorch preprocessing: the definition of what the fused kernels compute.

``preprocess_reference(frames, plan)`` turns decoded frames into normalised model inputs:

1. colour: uint8 RGB / 255, float RGB as is, or YUV 4:2:0 -> RGB (:func:`yuv420_to_rgb`) for
   the fragments (step 2);
2. fragments: optional bilinear upscale to ``plan.fragments.resize_to``, then the ``grid x grid``
   patches gathered into one ``(grid*patch)^2`` image per frame;
3. global view: the frame resized to ``global_size^2`` (bilinear, antialiased when downscaling, or
   bicubic). RGB input is resized as RGB. YUV 4:2:0 input is resampled plane by plane first and
   converted afterwards (:func:`yuv420_resized_rgb`): luma from ``H x W`` and both chroma planes
   from their own ``ceil(H/2) x ceil(W/2)`` samples to ``global_size^2`` with the same filter,
   then ``R, G, B`` from the resampled planes, clamped to [0, 1];
4. ``(x - mean) / std`` per channel, cast to the requested dtype.

Everything is differentiable for float RGB input, so the fast head can back-propagate into pixels.
Frames are converted one at a time (the YUV global view without any full-resolution RGB copy)
so that an 8K frame never exists in float for the whole clip.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..io.frames import Frames, RGBFrames, YUV420Frames
from .plan import FragmentPlan, SamplingPlan

# (Kr, Kb) luma coefficients of each matrix
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def yuv_coefficients(bit_depth: int, matrix: str, full_range: bool) -> tuple[float, ...]:
    """Affine YUV->RGB constants ``(y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u)``.

    With ``Y' = (Y - y_off) * y_scale`` and ``C' = (C - c_off) * c_scale`` (``C'`` in [-0.5, 0.5]):
    ``R = Y' + r_v V'``, ``G = Y' + g_u U' + g_v V'``, ``B = Y' + b_u U'``.
    """
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    top = float((1 << bit_depth) - 1)
    s = float(1 << (bit_depth - 8))
    if full_range:
        y_off, y_scale, c_off, c_scale = 0.0, 1.0 / top, float(1 << (bit_depth - 1)), 1.0 / top
    else:
        y_off, y_scale, c_off, c_scale = 16.0 * s, 1.0 / (219.0 * s), 128.0 * s, 1.0 / (224.0 * s)
    r_v = 2.0 * (1.0 - kr)
    b_u = 2.0 * (1.0 - kb)
    g_u = -b_u * kb / kg
    g_v = -r_v * kr / kg
    return y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bit_depth: int = 8,
                  matrix: str = "bt709", full_range: bool = False) -> torch.Tensor:
    """YUV 4:2:0 planes -> RGB float32 ``(T, 3, H, W)`` in [0, 1].

    ``y`` ``(T, H, W)``, ``u``/``v`` ``(T, ceil(H/2), ceil(W/2))`` integer samples. Chroma is
    upsampled by sample replication (each chroma sample covers its 2x2 luma block).
    """
    y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u = yuv_coefficients(bit_depth, matrix, full_range)
    t, h, w = y.shape
    h2, w2 = u.shape[-2:]
    yf = (y.float() - y_off) * y_scale
    if (2 * h2, 2 * w2) != (h, w):  # odd size: pad luma to whole 2x2 blocks, crop at the end
        yf = F.pad(yf, (0, 2 * w2 - w, 0, 2 * h2 - h))
    uf = (u.float() - c_off) * c_scale
    vf = (v.float() - c_off) * c_scale
    blocks = yf.view(t, h2, 2, w2, 2)
    out = torch.empty(t, 3, 2 * h2, 2 * w2, dtype=torch.float32, device=y.device)
    chroma = (r_v * vf, g_u * uf + g_v * vf, b_u * uf)  # each channel's chroma term at half resolution
    for c, term in enumerate(chroma):
        torch.add(blocks, term.view(t, h2, 1, w2, 1), out=out[:, c].view(t, h2, 2, w2, 2))
    return out[:, :, :h, :w].clamp_(0.0, 1.0)


def _rgb_from_yuv(yf: torch.Tensor, uf: torch.Tensor, vf: torch.Tensor, r_v: float, g_u: float, g_v: float,
                  b_u: float) -> torch.Tensor:
    """Offset and scaled ``Y'``, ``U'``, ``V'`` of the same shape ``(T, ...)`` -> RGB ``(T, 3, ...)``
    clamped to [0, 1] (the matrix of :func:`yuv_coefficients`)."""
    rgb = torch.stack((yf + r_v * vf, yf + (g_u * uf + g_v * vf), yf + b_u * uf), dim=1)
    return rgb.clamp_(0.0, 1.0)


def _take(plane: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``plane[:, rows, cols]`` for a ``(T, H, W)`` plane, as one flat gather."""
    t, h, w = plane.shape
    flat = (rows * w + cols).reshape(-1)
    return plane.reshape(t, h * w).index_select(1, flat).view(t, *rows.shape)


def yuv420_pixels_to_rgb(f: YUV420Frames, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """RGB float32 ``(T, 3, *rows.shape)`` at luma positions ``(rows, cols)``; equal to
    ``yuv420_to_rgb(f.y, f.u, f.v, ...)[:, :, rows, cols]`` without converting whole frames."""
    y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u = yuv_coefficients(f.bit_depth, f.matrix, f.full_range)
    yf = (_take(f.y, rows, cols).float() - y_off) * y_scale
    uf = (_take(f.u, rows // 2, cols // 2).float() - c_off) * c_scale
    vf = (_take(f.v, rows // 2, cols // 2).float() - c_off) * c_scale
    return _rgb_from_yuv(yf, uf, vf, r_v, g_u, g_v, b_u)


def gather_rgb(frames: Frames, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Float RGB ``(T, 3, *rows.shape)`` of every frame at luma positions ``(rows, cols)`` (keeps autograd)."""
    rows, cols = rows.to(frames.device), cols.to(frames.device)
    if isinstance(frames, YUV420Frames):
        return yuv420_pixels_to_rgb(frames, rows, cols)
    x = frames.data[:, rows, cols].permute(0, 3, 1, 2)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def frames_to_rgb(frames: Frames, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Frames ``[start, stop)`` as float32 RGB ``(t, 3, H, W)`` in [0, 1] (keeps autograd)."""
    if isinstance(frames, YUV420Frames):
        sl = slice(start, stop)
        return yuv420_to_rgb(frames.y[sl], frames.u[sl], frames.v[sl], frames.bit_depth, frames.matrix,
                             frames.full_range)
    assert isinstance(frames, RGBFrames)
    x = frames.data[start:stop].permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float()


def fragment_indices(frag: FragmentPlan, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Source row and column of every output pixel: two ``(G*P, G*P)`` int64 tensors."""
    g, p = frag.grid, frag.patch
    tops = torch.tensor(frag.tops, dtype=torch.long).view(g, g)
    lefts = torch.tensor(frag.lefts, dtype=torch.long).view(g, g)
    off = torch.arange(p)
    rows = (tops[:, None, :, None] + off[None, :, None, None]).expand(g, p, g, p).reshape(g * p, g * p)
    cols = (lefts[:, None, :, None] + off[None, None, None, :]).expand(g, p, g, p).reshape(g * p, g * p)
    return rows.to(device), cols.to(device)


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, H, W)`` float to ``size``: bilinear (antialiased when downscaling) or bicubic.

    Both use PyTorch's antialiased kernels (PIL-style: the kernel is widened by the scale factor when
    downscaling); the antialiased bicubic kernel has a = -0.5 as in PIL, which is what reasoning models
    preprocessed with PIL saw in training. Output is not clamped here (normalisation follows).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=True)


def yuv420_resized_rgb(f: YUV420Frames, size: tuple[int, int], interpolation: str = "bilinear",
                       start: int = 0, stop: int | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """Frames ``[start, stop)`` resized to ``size`` plane by plane, then converted: float32 RGB
    ``(t, 3, *size)`` in [0, 1], on ``device`` (default: the frames').

    ``Y`` is resized from ``H x W`` and ``U``, ``V`` from their own ``ceil(H/2) x ceil(W/2)``
    samples, all with :func:`resize` (the same filter), as float samples; then
    ``Y' = (Y_r - y_off) * y_scale``, ``C' = (C_r - c_off) * c_scale`` and ``R = Y' + r_v V'``,
    ``G = Y' + (g_u U' + g_v V')``, ``B = Y' + b_u U'``, clamped to [0, 1]. The affine maps are
    applied after resampling: the filter weights sum to one, so this equals resampling ``Y'`` and
    ``C'`` up to float32 rounding. Before the clamp this is linear, so it differs from
    ``resize(yuv420_to_rgb(...))`` only where the converted RGB leaves [0, 1] and by the chroma
    filter (applied to the chroma plane instead of to chroma replicated over 2x2 blocks).

    Geometry: chroma sample ``j`` covers luma samples ``2j, 2j + 1``, so for even ``H`` the chroma
    plane spans the picture exactly and its resampled samples sit on the luma output grid. For odd
    ``H`` the plane spans ``H + 1`` luma rows (the picture padded to whole 2x2 blocks, as
    :func:`yuv420_to_rgb` pads it), and resizing the whole plane maps those ``H + 1`` rows onto the
    ``S`` output rows: chroma is stretched by ``(H + 1) / H`` against luma, aligned at the top and
    at most one luma row (half a chroma sample) off at the bottom; likewise for odd ``W``.

    No full-resolution RGB is built: the float copies are one luma and two chroma planes.
    """
    y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u = yuv_coefficients(f.bit_depth, f.matrix, f.full_range)
    device = torch.device(device) if device is not None else f.device
    sl = slice(start, stop)
    size = (int(size[0]), int(size[1]))
    yr = resize(f.y[sl].to(device).unsqueeze(1).float(), size, interpolation)[:, 0]
    uvr = resize(torch.stack((f.u[sl], f.v[sl]), dim=1).to(device).float(), size, interpolation)
    yf = (yr - y_off) * y_scale
    uf = (uvr[:, 0] - c_off) * c_scale
    vf = (uvr[:, 1] - c_off) * c_scale
    return _rgb_from_yuv(yf, uf, vf, r_v, g_u, g_v, b_u)


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def rgb_views(rgb: torch.Tensor, plan: SamplingPlan) -> dict[str, torch.Tensor]:
    """Float RGB frames ``(N, 3, H, W)`` in [0, 1] -> the plan's normalised views, float32, as
    :func:`preprocess_reference` builds them (``{"fragments": (N, 3, G*P, G*P), "global_view":
    (N, 3, S, S)}``, the enabled ones), all frames at once and differentiable; ``H x W`` must be the
    plan's ``source_size``. Rewards use it on frames that already are tensors."""
    out = {}
    if plan.fragments is not None:
        rows, cols = fragment_indices(plan.fragments, rgb.device)
        src = rgb
        if plan.fragments.resize_to is not None:
            src = F.interpolate(rgb, size=plan.fragments.resize_to, mode="bilinear", align_corners=False)
        out["fragments"] = normalise(src[:, :, rows, cols], plan.mean, plan.std)
    if plan.global_size > 0:
        glob = resize(rgb, (plan.global_size, plan.global_size), plan.interpolation)
        out["global_view"] = normalise(glob, plan.mean, plan.std)
    return out


def preprocess_reference(frames: Frames, plan: SamplingPlan, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Frames (as decoded for ``plan.frame_indices``) -> normalised views.

    Returns ``{"fragments": (T, 3, G*P, G*P), "global_view": (T, 3, S, S)}`` (only the views the
    plan enables), dtype ``dtype``, on ``device`` (default: the frames' device).

    The global view of RGB frames is the RGB frame resized (:func:`resize`); that of YUV 4:2:0
    frames resamples the planes first and converts to RGB afterwards (:func:`yuv420_resized_rgb`:
    luma and chroma each resized to ``S x S`` from their own resolution, then converted and
    clamped), so no full-resolution RGB frame is built for it.
    """
    device = torch.device(device) if device is not None else frames.device
    t = frames.num_frames
    yuv = isinstance(frames, YUV420Frames)
    frag_out, glob_out = [], []
    if plan.fragments is not None:
        rows, cols = fragment_indices(plan.fragments, device)
    upscale = plan.fragments is not None and plan.fragments.resize_to is not None
    if plan.fragments is not None and not upscale:
        # fragments at native resolution need only their own pixels: gather first, then convert
        frag_out.append(gather_rgb(frames, rows, cols).to(device))
    size = (plan.global_size, plan.global_size)
    for i in range(t):
        if upscale or (plan.global_size > 0 and not yuv):
            rgb = frames_to_rgb(frames, i, i + 1).to(device)
            if upscale:
                src = F.interpolate(rgb, size=plan.fragments.resize_to, mode="bilinear", align_corners=False)
                frag_out.append(src[:, :, rows, cols])
            if plan.global_size > 0 and not yuv:
                glob_out.append(resize(rgb, size, plan.interpolation))
        if plan.global_size > 0 and yuv:
            glob_out.append(yuv420_resized_rgb(frames, size, plan.interpolation, i, i + 1, device))
    out = {}
    if plan.fragments is not None:
        s = plan.fragments.out_size
        frag = torch.cat(frag_out) if frag_out else torch.empty(0, 3, s, s, device=device)
        out["fragments"] = normalise(frag, plan.mean, plan.std).to(dtype)
    if plan.global_size > 0:
        s = plan.global_size
        glob = torch.cat(glob_out) if glob_out else torch.empty(0, 3, s, s, device=device)
        out["global_view"] = normalise(glob, plan.mean, plan.std).to(dtype)
    return out
