"""``vqametric demo``: make a sample clip and degraded copies of it, then score them all.

The sample is a synthetic 720p scene (textured background, panning camera, moving objects)
encoded near-losslessly with x264; the copies are the same frames encoded at a high CRF, scaled
down and back up, and with stutter (every other frame repeated). Nothing is downloaded.
"""
from __future__ import annotations

import os
import platform
from typing import Iterator

import av
import numpy as np


def scene_frames(n: int = 75, height: int = 720, width: int = 1280, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` RGB uint8 frames ``(height, width, 3)`` of a panning, textured synthetic scene."""
    rng = np.random.default_rng(seed)
    pan = 4
    big_w = width + pan * n
    yy, xx = np.mgrid[0:height, 0:big_w].astype(np.float32)
    sky = np.stack([90 + 80 * yy / height, 140 + 60 * yy / height, 220 - 40 * yy / height], -1)
    hills = (np.sin(xx / 140.0) * 60 + np.sin(xx / 37.0) * 15 + height * 0.55) < yy
    grass = np.stack([60 + 40 * np.sin(xx / 3.1) * np.cos(yy / 2.3), 120 + 50 * np.sin(xx / 5.3 + yy / 4.1),
                      40 + 20 * np.cos(yy / 3.7)], -1)
    base = np.where(hills[..., None], grass, sky) + rng.normal(0, 1, (height, big_w, 3))  # a light dither, not visible noise
    base = base.clip(0, 255).astype(np.uint8)
    for i in range(n):
        f = base[:, i * pan:i * pan + width].copy()
        for k, (r, col) in enumerate(((60, (240, 200, 40)), (40, (200, 40, 40)))):
            cy = int(height * (0.3 + 0.2 * k) + 40 * np.sin(i / 8.0 + k))
            cx = int((i * (6 + 5 * k) + 200 * (k + 1)) % width)
            y0, y1, x0, x1 = max(cy - r, 0), min(cy + r, height), max(cx - r, 0), min(cx + r, width)
            f[y0:y1, x0:x1] = col
            f[y0:y1:6, x0:x1] = (20, 20, 20)  # stripes: fine detail that compression smears
        yield f


# x86 SIMD levels of x264 without AVX-512: with AVX-512, frames whose chroma rows are not a multiple
# of 64 bytes (e.g. 300 px wide) encoded differently from run to run (one thread, same input)
X264_REPEATABLE_ASM = "MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,FMA3,BMI1,BMI2,AVX2,LZCNT"


def encode(frames, path: str, crf: int = 18, fps: int = 25, scale: float = 1.0, preset: str = "veryfast",
           threads: int | None = None, repeatable: bool = False) -> str:
    """Encode RGB uint8 frames ``(H, W, 3)`` with x264 at ``crf`` into an MP4 (yuv420p); ``scale < 1``
    encodes a downscaled copy that is scaled back up on decode-side by FFmpeg (bilinear), as a
    resolution-ladder rung would be. ``threads``: encoder threads (default: FFmpeg's choice).
    ``repeatable``: on x86, leave x264's AVX-512 code out, so that with ``threads=1`` every width
    gives the same file on every run (:data:`X264_REPEATABLE_ASM`)."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        options = {"crf": str(crf), "preset": preset}
        if repeatable and platform.machine().lower() in ("x86_64", "amd64"):
            options["x264-params"] = f"asm={X264_REPEATABLE_ASM}"
        s.options = options
        if threads is not None:
            s.thread_count = threads
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if scale != 1.0:
                sw, sh = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
                frame = frame.reformat(width=sw, height=sh).reformat(width=w, height=h)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_demo_clips(folder: str, num_frames: int = 75, height: int = 720, width: int = 1280) -> dict[str, str]:
    """Write the sample and its degraded copies into ``folder``; returns name -> path."""
    os.makedirs(folder, exist_ok=True)
    frames = list(scene_frames(num_frames, height, width))
    stutter = [frames[i - i % 2] for i in range(len(frames))]
    return {
        "pristine (crf 18)": encode(frames, os.path.join(folder, "pristine.mp4"), crf=18),
        "compressed (crf 45)": encode(frames, os.path.join(folder, "crf45.mp4"), crf=45),
        "downscaled x0.25 + crf 30": encode(frames, os.path.join(folder, "downscaled.mp4"), crf=30, scale=0.25),
        "stutter (frames doubled)": encode(stutter, os.path.join(folder, "stutter.mp4"), crf=18),
    }
