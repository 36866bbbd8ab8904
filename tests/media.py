"""Test media made on the fly with PyAV: nothing is downloaded.

``moving_frames`` draws a textured scene that pans, so that codecs, sampling and temporal checks
see real content; ``write_video`` encodes frames to any container/codec/pixel format.
"""
from __future__ import annotations

import fractions
import os
from typing import Sequence

import av
import numpy as np


def moving_frames(n: int = 24, height: int = 64, width: int = 96, seed: int = 0, speed: int = 2) -> np.ndarray:
    """``(n, height, width, 3)`` uint8 frames of a panning textured scene with a moving square."""
    rng = np.random.default_rng(seed)
    big_h, big_w = height + 4, width + speed * n + 4
    yy, xx = np.mgrid[0:big_h, 0:big_w]
    base = np.stack([
        128 + 80 * np.sin(xx / 7.0 + seed) * np.cos(yy / 11.0),
        128 + 80 * np.cos(xx / 13.0) * np.sin(yy / 5.0 + seed),
        128 + 60 * np.sin((xx + yy) / 9.0),
    ], -1)
    base = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    out = np.empty((n, height, width, 3), np.uint8)
    sq = max(2, min(height, width) // 5)
    for i in range(n):
        f = base[2:2 + height, 2 + i * speed: 2 + i * speed + width].copy()
        y0 = (i * 3) % max(1, height - sq)
        x0 = (i * 5) % max(1, width - sq)
        f[y0:y0 + sq, x0:x0 + sq] = (250, 40, 40)
        out[i] = f
    return out


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25,
                codec: str = "libx264", pix_fmt: str = "yuv420p", container: str | None = None,
                rotation: int | None = None, options: dict | None = None,
                timestamps: Sequence[float] | None = None, input_format: str = "rgb24") -> str:
    """Encode ``frames`` (``(T, H, W, 3)`` uint8 RGB, or gray/16-bit per ``input_format``).

    ``timestamps`` (seconds) make a variable-frame-rate stream; ``rotation`` writes a display matrix.
    """
    path = os.fspath(path)
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with av.open(path, "w", format=container) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = pix_fmt
        if options:
            s.options = dict(options)
        if codec in ("libx264", "libx265"):
            s.options = {**({"preset": "ultrafast"}), **(s.options or {})}
            if codec == "libx265":
                s.options = {**s.options, "x265-params": "log-level=error"}
        if rotation is not None:
            s.set_display_rotation(rotation)
        if timestamps is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=input_format)
            if timestamps is not None:
                frame.pts = int(round(timestamps[i] * 1000))
                frame.time_base = fractions.Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> str:
    path = os.fspath(path)
    with av.open(path, "w") as c:
        s = c.add_stream("aac", rate=16000)
        n = int(16000 * seconds)
        samples = (np.sin(np.arange(n) / 10.0) * 0.2).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_image(path: str | os.PathLike, image: np.ndarray) -> str:
    """A PNG or JPEG still image (by extension)."""
    path = os.fspath(path)
    codec = "png" if path.endswith(".png") else "mjpeg"
    pix = "rgb24" if codec == "png" else "yuvj420p"
    with av.open(path, "w", format="image2") as c:
        s = c.add_stream(codec, rate=1)
        s.width, s.height, s.pix_fmt = image.shape[1], image.shape[0], pix
        for p in s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
