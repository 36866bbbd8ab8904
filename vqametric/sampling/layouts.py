"""Model-ready layouts for the reasoning (LMM) backends: the plain-PyTorch references.

Both layouts start like the fragments of :func:`~vqametric.sampling.reference.preprocess_reference`
(whose YUV global view resizes the planes before converting; these layouts do not): frames become
RGB float32 in [0, 1] one at a time (uint8 / 255, float as is, YUV 4:2:0 through
:func:`~vqametric.sampling.reference.yuv420_to_rgb`), then

* **InternVL tiles** (:func:`internvl_tiles_reference`): each whole frame is resized to one
  ``size x size`` square tile (448 for InternVL2/2.5/3 at 448px, 560 for the 560px variants;
  the VQAThinker release feeds one tile per frame, no dynamic tiling, no thumbnail) with
  antialiased bicubic (``F.interpolate(mode="bicubic", antialias=True)``: PIL's cubic, a = -0.5),
  clamped to [0, 1] (the released pipeline resizes 8-bit images, whose values cannot overshoot),
  normalised with ImageNet mean/std. Output ``(T, 3, size, size)``.
* **Qwen2.5-VL / Qwen3-VL patches** (:func:`qwen_vl_patches_reference`): each frame is resized
  (same antialiased bicubic, same clamp) to :func:`smart_resize`'s ``(H', W')``, multiples of
  ``patch_size * merge_size``; normalised; the clip is padded to a multiple of
  ``temporal_patch_size`` frames by repeating the last frame; then patchified by
  :func:`patchify_qwen` into ``pixel_values`` ``(grid_t * grid_h * grid_w, 3 * tp * p * p)`` with
  ``grid_thw = [[grid_t, grid_h, grid_w]]`` (``grid_h = H' / p``, ``grid_w = W' / p``). The row and
  column order is that of the Hugging Face Qwen2-VL image/video processors, so the tensors can be
  passed to the models as ``pixel_values_videos`` / ``video_grid_thw``.

All outputs are ``dtype`` (float32 by default; float16/bfloat16 are rounded once from float32) on
``device`` (default: the frames' device). Values are ``(x - mean) / std`` with ``x`` in [0, 1].
The fused kernels in :mod:`vqametric.kernels` compute the same tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import SamplingError
from ..io.frames import Frames
from .plan import IMAGENET_MEAN, IMAGENET_STD
from .reference import frames_to_rgb, normalise, resize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

INTERNVL_TILE_SIZES = (448, 560)


CHUNK_PIXELS = 1 << 24  # source pixels converted to float at once (16.8 M: 8 frames of 1080p, 2 of 4K)


def _resized_clip(frames: Frames, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Frames -> float32 ``(T, 3, *size)`` RGB, antialiased bicubic, clamped to [0, 1].

    Frames are converted and resized in chunks of at most :data:`CHUNK_PIXELS` source pixels:
    batched resizes are much faster on CPU, and memory stays bounded for long or 4K clips."""
    if frames.num_frames < 1:
        raise SamplingError("cannot build a layout from zero frames")
    h, w = frames.size
    step = max(1, CHUNK_PIXELS // (h * w))
    out = []
    for i in range(0, frames.num_frames, step):
        rgb = frames_to_rgb(frames, i, i + step).to(device)
        out.append(resize(rgb, size, "bicubic").clamp(0.0, 1.0))
    return torch.cat(out)


def internvl_tiles_reference(frames: Frames, size: int = 448, dtype: torch.dtype = torch.float32,
                             device: torch.device | str | None = None, *, mean=IMAGENET_MEAN,
                             std=IMAGENET_STD) -> torch.Tensor:
    """One InternVL square tile per frame: ``(T, 3, size, size)`` ``dtype``.

    ``x = clamp(bicubic_aa(rgb, (size, size)), 0, 1)``, then ``(x - mean) / std`` per channel.
    """
    if size < 1:
        raise SamplingError(f"tile size must be positive, got {size}")
    device = torch.device(device) if device is not None else frames.device
    x = _resized_clip(frames, (size, size), device)
    return normalise(x, mean, std).to(dtype)


@dataclass(frozen=True)
class QwenVLLayout:
    """Patch geometry and pixel budget of a Qwen-VL vision tower.

    ``min_pixels``/``max_pixels`` bound ``H' * W'`` of each frame (defaults: the per-frame video
    bounds of the Qwen reference pipeline, 128 and 768 merged tokens per frame).
    """

    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if min(self.patch_size, self.merge_size, self.temporal_patch_size) < 1:
            raise SamplingError("patch_size, merge_size and temporal_patch_size must be at least 1")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise SamplingError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if min(self.std) <= 0:
            raise SamplingError("std must be positive")

    @property
    def factor(self) -> int:
        """``H'`` and ``W'`` are multiples of this (``patch_size * merge_size``)."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Columns of ``pixel_values``: ``3 * temporal_patch_size * patch_size ** 2``."""
        return 3 * self.temporal_patch_size * self.patch_size * self.patch_size

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        return smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)

    def grid_thw(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(grid_t, grid_h, grid_w)`` for ``num_frames`` frames of ``height x width`` (source)."""
        h, w = self.resized_size(height, width)
        return (-(-num_frames // self.temporal_patch_size), h // self.patch_size, w // self.patch_size)


#: Qwen2.5-VL: 14-pixel patches, 2x2 merge, CLIP mean/std (its released processor config).
QWEN25_VL = QwenVLLayout()
#: Qwen3-VL: 16-pixel patches, 2x2 merge; its released processor normalises with mean = std = 0.5.
QWEN3_VL = QwenVLLayout(patch_size=16, min_pixels=128 * 32 * 32, max_pixels=768 * 32 * 32,
                        mean=HALF_MEAN, std=HALF_STD)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen-VL target size: both sides multiples of ``factor``, area within
    ``[min_pixels, max_pixels]``, aspect ratio kept as well as possible.

    Sides are rounded to the nearest multiple (Python ``round``: half to even); if the area is too
    large both sides are scaled by ``sqrt(H*W / max_pixels)`` and floored to multiples, if too small
    scaled up and ceiled. Every side is at least ``factor`` (tiny frames are upscaled rather than
    rejected). Aspect ratios above 200 raise :class:`~vqametric.errors.SamplingError`.
    """
    if height < 1 or width < 1:
        raise SamplingError(f"cannot resize an empty {height}x{width} frame")
    if max(height, width) / min(height, width) > 200:
        raise SamplingError(f"aspect ratio of {height}x{width} is above 200; crop the frames first")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def patchify_qwen(x: torch.Tensor, layout: QwenVLLayout = QWEN25_VL) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, 3, H', W')`` -> ``pixel_values`` ``(grid_t*grid_h*grid_w, 3*tp*p*p)`` and ``grid_thw``.

    Frames are first padded to a multiple of ``tp`` by repeating the last one. With
    ``gh = H'/p``, ``gw = W'/p``, ``m`` the merge size, pixel ``(t, c, y, x)`` goes to

    * row ``((t // tp) * (gh/m) + (y // p) // m) * (gw/m) + (x // p) // m) * m*m
      + ((y // p) % m) * m + (x // p) % m``,
    * column ``((c * tp + t % tp) * p + y % p) * p + x % p``,

    i.e. rows run over temporal groups, then 2x2 merge blocks in raster order, then the patches
    inside a block; each row holds one ``(3, tp, p, p)`` patch. ``grid_thw`` is int64 ``(1, 3)`` on
    ``x``'s device.
    """
    p, m, tp = layout.patch_size, layout.merge_size, layout.temporal_patch_size
    t, c, h, w = x.shape
    if h % (p * m) or w % (p * m):
        raise SamplingError(f"frame size {h}x{w} is not a multiple of patch*merge = {p * m}")
    pad = -t % tp
    if pad:
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
    gt, gh, gw = (t + pad) // tp, h // p, w // p
    v = x.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    # -> (gt, bh, bw, mh, mw, c, tp, p, p)
    v = v.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = v.reshape(gt * gh * gw, c * tp * p * p)
    grid = torch.tensor([[gt, gh, gw]], dtype=torch.int64, device=x.device)
    return pixel_values, grid


def qwen_vl_patches_reference(frames: Frames, layout: QwenVLLayout = QWEN25_VL,
                              dtype: torch.dtype = torch.float32,
                              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen-VL ``(pixel_values, grid_thw)`` for a clip (see the module docstring).

    ``pixel_values``: ``(grid_t*grid_h*grid_w, 3*tp*p*p)`` ``dtype``; ``grid_thw``: int64 ``(1, 3)``;
    ``grid_t * grid_h * grid_w == pixel_values.shape[0]``.
    """
    device = torch.device(device) if device is not None else frames.device
    height, width = frames.size
    size = layout.resized_size(height, width)
    x = normalise(_resized_clip(frames, size, device), layout.mean, layout.std)
    pixel_values, grid = patchify_qwen(x, layout)
    return pixel_values.to(dtype), grid


__all__ = ["CLIP_MEAN", "CLIP_STD", "HALF_MEAN", "HALF_STD", "INTERNVL_TILE_SIZES", "QwenVLLayout", "QWEN25_VL",
           "QWEN3_VL", "smart_resize", "patchify_qwen", "internvl_tiles_reference", "qwen_vl_patches_reference"]
