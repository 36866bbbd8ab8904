"""The severity tables of the synthetic degradations (one entry per level 1-5), and the helpers
every degradation uses: input checks, seeded randomness, output in the input's type."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

LEVELS = (1, 2, 3, 4, 5)

BLUR_SIGMA = (0.8, 1.3, 2.0, 3.0, 4.5)
NOISE_STD = (4.0, 8.0, 13.0, 20.0, 30.0)
JPEG_QSCALE = (6, 12, 20, 32, 50)
CODEC_CRF = {"x264": (24, 30, 36, 42, 48), "x265": (28, 33, 38, 44, 50), "av1": (32, 44, 52, 58, 63)}
CODEC_SETTINGS = {
    # single-threaded so that the output does not depend on the machine's core count
    "x264": ("libx264", {"preset": "veryfast", "threads": "1"}),
    "x265": ("libx265", {"preset": "superfast", "x265-params": "log-level=error:pools=1:frame-threads=1"}),
    "av1": ("libsvtav1", {"preset": "10", "svtav1-params": "lp=1"}),
}
DECODERS = {"x264": "h264", "x265": "hevc", "av1": "libdav1d"}
SCALE_FACTOR = (0.75, 0.5, 0.35, 0.25, 0.18)
EXPOSURE_UNDER = ((0.8, 1.1), (0.65, 1.25), (0.5, 1.4), (0.38, 1.6), (0.27, 1.8))    # (gain, gamma)
EXPOSURE_OVER = ((1.25, 0.95), (1.5, 0.9), (1.8, 0.85), (2.2, 0.8), (2.7, 0.75))
SATURATION_DOWN = (0.7, 0.5, 0.3, 0.15, 0.0)
SATURATION_UP = (1.3, 1.6, 2.0, 2.5, 3.0)
TINT_SHIFT = (6.0, 12.0, 20.0, 30.0, 45.0)
FREEZE_FRAMES = (2, 3, 5, 8, 12)
DROP_FRACTION = (0.1, 0.2, 0.3, 0.4, 0.5)
FLICKER_AMPLITUDE = (0.04, 0.08, 0.13, 0.2, 0.3)
SHAKE_FRACTION = (0.004, 0.008, 0.015, 0.025, 0.04)

TEMPORAL_PERTURBATIONS = ("shuffle", "local_shuffle", "reverse", "jitter", "duplicate", "black")
LOCAL_SHUFFLE_WINDOW = 4
BLACK = -1  # index meaning "a black frame" in index transforms


def as_array(clip: Any) -> tuple[np.ndarray, bool]:
    """``(clip as a uint8 numpy (T, H, W, 3) array, whether it came as a torch tensor)``."""
    is_torch = isinstance(clip, torch.Tensor)
    a = clip.detach().cpu().numpy() if is_torch else np.asarray(clip)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"a clip must have shape (T, H, W, 3), got {tuple(a.shape)}")
    if a.dtype != np.uint8:
        raise ValueError(f"a clip must be uint8 (0-255), got {a.dtype}")
    if a.shape[0] < 1:
        raise ValueError("the clip has no frames")
    return a, is_torch


def like_input(a: np.ndarray, is_torch: bool):
    """``a`` as a contiguous array, or a torch tensor when the input was one."""
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a) if is_torch else a


def level_param(table, level: int):
    """The entry of a per-level table for ``level`` 1-5; :class:`ValueError` for another level."""
    if int(level) != level or not 1 <= level <= 5:
        raise ValueError(f"level must be an integer from 1 to 5, got {level!r}")
    return table[int(level) - 1]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Rounded and clipped to 0-255, as ``uint8``."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def rng_for(seed: int) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``: every random draw of a degradation comes from one."""
    return np.random.default_rng(seed)
