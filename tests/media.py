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
                timestamps: Sequence[float] | None = None, input_format: str = "rgb24",
                container_options: dict | None = None) -> str:
    """Encode ``frames`` (``(T, H, W, 3)`` uint8 RGB, or gray/16-bit per ``input_format``).

    ``timestamps`` (seconds) make a variable-frame-rate stream; ``rotation`` writes a display matrix.
    ``options`` go to the encoder, ``container_options`` to the muxer (e.g. ``{"movflags": "faststart"}``).
    ``frames`` may also hold ready ``av.VideoFrame`` objects (see :func:`yuv_frame`).
    """
    path = os.fspath(path)
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with av.open(path, "w", format=container, options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        first = frames[0]
        s.width, s.height = (first.width, first.height) if isinstance(first, av.VideoFrame) else \
            (first.shape[1], first.shape[0])
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
            frame = f if isinstance(f, av.VideoFrame) else \
                av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=input_format)
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


INDEX_BITS = 8


def indexed_frames(n: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """:func:`moving_frames` with each frame's index drawn in its top band as black/white bit blocks.

    ``(n, height, width, 3)`` uint8; ``n <= 256``, ``width >= 64``. :func:`frame_index` reads the
    index back from a decoded frame, which tells exactly which source frame a decoder returned.
    """
    assert n <= 1 << INDEX_BITS and width >= 8 * INDEX_BITS
    out = moving_frames(n, height, width, seed)
    bw, bh = width // INDEX_BITS, max(8, height // 4)
    for i in range(n):
        for b in range(INDEX_BITS):
            out[i, :bh, b * bw:(b + 1) * bw] = 255 if (i >> b) & 1 else 0
    return out


def frame_index(luma: np.ndarray) -> int:
    """The index drawn by :func:`indexed_frames`, from an upright ``(H, W)`` luma or ``(H, W, 3)`` frame."""
    img = np.asarray(luma, dtype=np.float64)
    if img.ndim == 3:
        img = img.mean(-1)
    h, w = img.shape
    bw, bh = w // INDEX_BITS, max(8, h // 4)
    top = img.max() if img.max() > 255 else 255  # 8-bit or high-bit-depth samples
    bits = [img[2:bh - 2, b * bw + 2:(b + 1) * bw - 2].mean() > top / 2 for b in range(INDEX_BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def yuv_frame(planes: Sequence[np.ndarray], format: str = "yuv420p") -> av.VideoFrame:
    """An ``av.VideoFrame`` of ``format`` holding exactly ``planes`` (any size, odd ones included).

    ``planes``: one 2-D array per plane (``uint8``, or ``uint16`` for ``*10le`` formats).
    """
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, format)
    for plane, data in zip(frame.planes, planes):
        data = np.ascontiguousarray(data)
        row = data.shape[1] * data.itemsize
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, :row] = data.view(np.uint8).reshape(plane.height, row)
        plane.update(buf.tobytes())
    return frame


def random_yuv420(n: int, height: int, width: int, bit_depth: int = 8, full_range: bool = False,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random I420 planes: ``y`` ``(n, H, W)``, ``u``/``v`` ``(n, ceil(H/2), ceil(W/2))``.

    ``uint8`` for 8 bits, ``uint16`` above; samples stay inside the legal (limited or full) range.
    """
    rng = np.random.default_rng(seed)
    s = 1 << (bit_depth - 8)
    ylo, yhi, clo, chi = (0, 255 * s + s - 1, 0, 255 * s + s - 1) if full_range else (16 * s, 235 * s, 16 * s, 240 * s)
    ch, cw = (height + 1) // 2, (width + 1) // 2

    def plane(h, w, lo, hi):
        yy, xx = np.mgrid[0:h, 0:w]
        phase = rng.uniform(0, 6, (n, 1, 1))
        wave = 0.5 + 0.4 * np.sin(xx / 5.0 + phase) * np.cos(yy / 7.0 + phase)
        x = lo + (hi - lo) * np.clip(wave + rng.normal(0, 0.03, (n, h, w)), 0, 1)
        return np.round(x).astype(np.uint8 if bit_depth == 8 else np.uint16)

    return plane(height, width, ylo, yhi), plane(ch, cw, clo, chi), plane(ch, cw, clo, chi)


def write_empty_video(path: str | os.PathLike, codec: str = "libx264", container: str | None = None) -> str:
    """A container (header and trailer) declaring a video stream that holds zero frames."""
    path = os.fspath(path)
    with av.open(path, "w", format=container) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    return path


def truncated_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (an interrupted download)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return os.fspath(dst)


def remux_with_edit_list(src: str | os.PathLike, dst: str | os.PathLike, hide_seconds: float) -> str:
    """Remux ``src`` to MP4 ``dst`` so that its first ``hide_seconds`` lie before the start of the
    edit list: those packets stay (later frames reference them) but are never shown, as in a clip
    cut with ``ffmpeg -ss T -i in.mp4 -c copy out.mp4``."""
    dst = os.fspath(dst)
    with av.open(os.fspath(src)) as inp, av.open(dst, "w", format="mp4") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        shift = int(round(hide_seconds / ist.time_base))
        for packet in inp.demux(ist):
            if packet.dts is None:  # the demuxer's empty flush packet
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = ost
            out.mux(packet)
    return dst
