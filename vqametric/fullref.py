"""Full-reference metrics (VMAF, PSNR, SSIM) through the ``libvmaf`` filter of the ffmpeg binary
that ``imageio-ffmpeg`` ships, with the default ``vmaf_v0.6.1`` model.

Used by the training recipes (VMAF of decoded ladders, ``train/vmaf.py``) and by ``vqametric rd
--reference`` (VMAF, PSNR and SSIM of encoded files against their source).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import lru_cache
from typing import Any, Sequence


class VmafUnavailable(RuntimeError):
    """No ffmpeg with libvmaf was found."""


@lru_cache(maxsize=1)
def ffmpeg_with_vmaf() -> str:
    """Path of an ffmpeg binary that has the ``libvmaf`` filter (``imageio-ffmpeg``'s)."""
    try:
        import imageio_ffmpeg  # optional: the train / test extra (an ffmpeg with libvmaf)
    except ImportError as e:
        raise VmafUnavailable("VMAF needs imageio-ffmpeg (its ffmpeg is built with libvmaf): "
                              "pip install imageio-ffmpeg") from e
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60).stdout
    if " libvmaf " not in filters:
        raise VmafUnavailable(f"the ffmpeg of imageio-ffmpeg ({os.path.basename(exe)}) has no libvmaf filter; "
                              "install an imageio-ffmpeg release whose binary includes it")
    return exe


def run_libvmaf(inputs: Sequence[str], prepare: str, threads: int = 1, features: str = "") -> dict[str, Any]:
    """Run libvmaf on ffmpeg ``inputs`` (input 0 distorted, input 1 reference); ``prepare`` is the
    filter chain that ends in the labels ``[d]`` and ``[r]``; ``features`` extra libvmaf features
    (``"psnr|float_ssim"``). Returns libvmaf's JSON log (``frames``, ``pooled_metrics``)."""
    exe = ffmpeg_with_vmaf()
    with tempfile.TemporaryDirectory(prefix="vqametric-vmaf-") as tmp:
        log = os.path.join(tmp, "vmaf.json")
        extra = ":feature=" + "|".join(f"name={f}" for f in features.split("|")) if features else ""
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *inputs, "-lavfi",
               f"{prepare};[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={int(threads)}{extra}",
               "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not os.path.isfile(log):
            raise RuntimeError(f"ffmpeg libvmaf failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        with open(log) as f:
            return json.load(f)


def file_metrics(distorted: str, reference: str, size: tuple[int, int], threads: int = 1) -> dict[str, float]:
    """Mean ``vmaf`` (0-100), ``psnr_y`` (dB) and ``ssim`` (0-1) of the video file ``distorted``
    against ``reference``; the distorted frames are scaled (bicubic) to the reference's
    ``size`` = ``(width, height)``, both compared as 8-bit 4:2:0."""
    w, h = size
    log = run_libvmaf(["-i", distorted, "-i", reference],
                      f"[0:v]scale={int(w)}:{int(h)}:flags=bicubic,format=yuv420p[d];[1:v]format=yuv420p[r]",
                      threads, "psnr|float_ssim")
    pooled = log["pooled_metrics"]
    return {"vmaf": float(pooled["vmaf"]["mean"]), "psnr_y": float(pooled["psnr_y"]["mean"]),
            "ssim": float(pooled["float_ssim"]["mean"])}
