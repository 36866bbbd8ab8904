"""VMAF (Netflix's full-reference video quality model) of a distorted clip against its reference.

Runs the ``libvmaf`` filter of the ffmpeg binary that ``imageio-ffmpeg`` ships (``pip install
imageio-ffmpeg``; part of the ``train`` extra) with the default ``vmaf_v0.6.1`` model. The head's
evaluation uses it to report how the fast head agrees with VMAF on compression and scaling ladders.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..fullref import VmafUnavailable, ffmpeg_with_vmaf, run_libvmaf

__all__ = ["VmafUnavailable", "ffmpeg_with_vmaf", "vmaf"]


def _check(name: str, a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ValueError(f"{name} must be (T, H, W, 3) uint8 RGB frames, got {a.shape} {a.dtype}")
    return a


def vmaf(reference: np.ndarray, distorted: np.ndarray, threads: int = 1) -> float:
    """Mean VMAF (0-100, higher is better) over frames.

    ``reference``, ``distorted``: ``(T, H, W, 3)`` uint8 RGB, same shape (a distorted clip of another
    size must be scaled back first, as the ladders do). Both are converted to 8-bit 4:2:0 (BT.601)
    by ffmpeg before scoring.
    """
    ref, dist = _check("reference", reference), _check("distorted", distorted)
    if ref.shape != dist.shape:
        raise ValueError(f"reference {ref.shape} and distorted {dist.shape} must have the same shape")
    t, h, w = ref.shape[:3]
    with tempfile.TemporaryDirectory(prefix="vqametric-vmaf-") as tmp:
        paths = {k: os.path.join(tmp, f"{k}.rgb") for k in ("ref", "dist")}
        ref.tofile(paths["ref"])
        dist.tofile(paths["dist"])
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
        data = run_libvmaf([*raw, "-i", paths["dist"], *raw, "-i", paths["ref"]],
                           "[0:v]format=yuv420p[d];[1:v]format=yuv420p[r]", threads)
    frames = [fr["metrics"]["vmaf"] for fr in data.get("frames", [])]
    if len(frames) != t:
        raise RuntimeError(f"libvmaf scored {len(frames)} of {t} frames")
    return float(np.mean(frames))
