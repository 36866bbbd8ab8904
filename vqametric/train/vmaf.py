"""VMAF (Netflix's full-reference video quality model) of a distorted clip against its reference.

Runs the ``libvmaf`` filter of the ffmpeg binary that ``imageio-ffmpeg`` ships (``pip install
imageio-ffmpeg``; part of the ``train`` extra) with the default ``vmaf_v0.6.1`` model. The head's
evaluation uses it to report how the fast head agrees with VMAF on compression and scaling ladders.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import lru_cache

import numpy as np


class VmafUnavailable(RuntimeError):
    """No ffmpeg with libvmaf was found."""


@lru_cache(maxsize=1)
def ffmpeg_with_vmaf() -> str:
    """Path of an ffmpeg binary that has the ``libvmaf`` filter (``imageio-ffmpeg``'s)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise VmafUnavailable("VMAF needs imageio-ffmpeg (its ffmpeg is built with libvmaf): "
                              "pip install imageio-ffmpeg") from e
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60).stdout
    if " libvmaf " not in filters:
        raise VmafUnavailable(f"the ffmpeg of imageio-ffmpeg ({os.path.basename(exe)}) has no libvmaf filter; "
                              "install an imageio-ffmpeg release whose binary includes it")
    return exe


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
    exe = ffmpeg_with_vmaf()
    with tempfile.TemporaryDirectory(prefix="vqametric-vmaf-") as tmp:
        paths = {k: os.path.join(tmp, f"{k}.rgb") for k in ("ref", "dist")}
        ref.tofile(paths["ref"])
        dist.tofile(paths["dist"])
        log = os.path.join(tmp, "vmaf.json")
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *raw, "-i", paths["dist"], *raw, "-i",
               paths["ref"], "-lavfi",
               f"[0:v]format=yuv420p[d];[1:v]format=yuv420p[r];[d][r]libvmaf=log_fmt=json:log_path={log}"
               f":n_threads={int(threads)}", "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not os.path.isfile(log):
            raise RuntimeError(f"ffmpeg libvmaf failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        with open(log) as f:
            data = json.load(f)
    frames = [fr["metrics"]["vmaf"] for fr in data.get("frames", [])]
    if len(frames) != t:
        raise RuntimeError(f"libvmaf scored {len(frames)} of {t} frames")
    return float(np.mean(frames))
