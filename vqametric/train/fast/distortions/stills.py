"""Moving clips from stills (a pan or a zoom across a photo), and area downsampling."""
from __future__ import annotations

import av
import numpy as np
import torch

from .levels import like_input, rng_for


def even_size(x: float) -> int:
    """``x`` rounded down to an even number of pixels, at least 2."""
    return max(2, int(x) // 2 * 2)


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image resized to ``(height, width, 3)`` by area averaging (swscale ``AREA``)."""
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(
        width=width, height=height, interpolation="AREA").to_ndarray(format="rgb24")


def downsample_image(image: np.ndarray, factor: float) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image shrunk by ``factor`` in (0, 1] (sides rounded to even, area averaging).

    Used to make pristine sources without the 8-px block grid of a JPEG-born photo: averaging over
    a non-integer footprint spreads the grid's steps over every phase (see docs/training-head.md).
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    H, W = image.shape[:2]
    h, w = even_size(H * factor), even_size(W * factor)
    return image if (h, w) == (H, W) else resize_area(image, h, w)


def make_clip_from_image(image, num_frames: int, motion: str = "pan", seed: int = 0, crop: float = 0.875,
                         max_speed: int = 4):
    """A moving ``(num_frames, h, w, 3)`` uint8 clip cut from a still ``(H, W, 3)`` uint8 image.

    The output size is ``crop`` of each side rounded down to even (448x448 from 512x512).

    * ``pan``: a window of that size moves in a straight line by an integer velocity
      ``(vy, vx)`` per frame (seeded, ``max(|vy|, |vx|)`` from 1 to ``max_speed`` px, reduced to
      what the margin allows); frames are exact pixel copies of the image, so the clip carries
      the image's own quality. A margin too small for 1 px/frame gives a static clip.
    * ``zoom``: a centred (seeded jitter) window grows geometrically from the output size to the
      largest window of the same aspect that fits (zoom out), or the reverse (zoom in, seeded),
      each resized to the output size by area averaging (swscale ``AREA``; never upscaled).
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    is_torch = isinstance(image, torch.Tensor)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    rng = rng_for(seed)
    H, W = arr.shape[:2]
    h, w = min(H, even_size(H * crop)), min(W, even_size(W * crop))
    n = num_frames
    if motion == "pan":
        steps = max(1, n - 1)
        vmax_y = min(max_speed, (H - h) // steps)
        vmax_x = min(max_speed, (W - w) // steps)
        while True:
            vy = int(rng.integers(-vmax_y, vmax_y + 1))
            vx = int(rng.integers(-vmax_x, vmax_x + 1))
            if (vy, vx) != (0, 0) or (vmax_y, vmax_x) == (0, 0):
                break
        travel_y, travel_x = abs(vy) * (n - 1), abs(vx) * (n - 1)
        y0 = int(rng.integers(0, H - h - travel_y + 1)) + (travel_y if vy < 0 else 0)
        x0 = int(rng.integers(0, W - w - travel_x + 1)) + (travel_x if vx < 0 else 0)
        out = np.stack([arr[y0 + vy * i: y0 + vy * i + h, x0 + vx * i: x0 + vx * i + w] for i in range(n)])
    elif motion == "zoom":
        s_max = min(H / h, W / w)
        scales = s_max ** (np.arange(n) / max(1, n - 1))
        if rng.integers(0, 2):
            scales = scales[::-1]
        cy = H / 2 + rng.uniform(-0.5, 0.5) * (H - h * s_max)
        cx = W / 2 + rng.uniform(-0.5, 0.5) * (W - w * s_max)
        frames = []
        for s in scales:
            ch, cw = min(H, int(round(h * s))), min(W, int(round(w * s)))
            top = int(round(min(max(cy - ch / 2, 0), H - ch)))
            left = int(round(min(max(cx - cw / 2, 0), W - cw)))
            win = arr[top: top + ch, left: left + cw]
            frames.append(resize_area(win, h, w) if (ch, cw) != (h, w) else win)
        out = np.stack(frames)
    else:
        raise ValueError(f"motion must be 'pan' or 'zoom', got {motion!r}")
    return like_input(out, is_torch)
