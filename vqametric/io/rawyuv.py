"""Raw (headerless) YUV files: ``.yuv`` frames back to back, as encoders read and write them.

A raw file says nothing about itself, so its size, pixel format and frame rate come from the
caller: ``RawYUV(path, width, height, pix_fmt, fps)`` is a :class:`~vqametric.io.clip.Clip` that
``vqametric.score`` accepts; on the command line ``--size WxH --pix-fmt F --fps R``. Opening a
``.yuv`` path without them raises :class:`~vqametric.errors.InvalidVideoInput` naming them.

Layouts (``cw, ch = ceil(W/2), ceil(H/2)``), one frame after another:

* ``yuv420p``: Y ``H x W`` bytes, then U and V, ``ch x cw`` bytes each (I420);
* ``yuv420p10le``: the same planes, 16-bit little-endian samples of 10 bits (0..1023);
* ``nv12``: Y, then ``ch x cw`` interleaved U, V byte pairs.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
from typing import Iterator

import numpy as np
import torch

from ..errors import InvalidVideoInput
from .clip import Clip, ClipInfo, checked_fps
from .frames import MATRICES, YUV420Frames

RAW_SUFFIXES = (".yuv",)
PIX_FMTS = ("yuv420p", "yuv420p10le", "nv12")
OPTIONS_HINT = (f"--size WxH --pix-fmt {'|'.join(PIX_FMTS)} --fps R on the command line, or "
                "vqametric.io.rawyuv.RawYUV(path, width, height, pix_fmt, fps) in Python")


class RawYUV(Clip):
    """A headerless YUV 4:2:0 file of ``width`` x ``height`` frames in ``pix_fmt`` at ``fps``.

    Reads only the requested frames (one seek and read each) and returns
    :class:`~vqametric.io.frames.YUV420Frames` (``uint8`` planes, ``int32`` holding 10-bit
    samples). ``matrix`` (``bt601``/``bt709``/``bt2020``) and ``full_range`` describe the samples,
    which the file cannot; without ``matrix``, the rule the file decoder applies to untagged
    streams: ``bt709`` from 720 lines up, ``bt601`` below. The file must hold a whole number of frames.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, pix_fmt: str = "yuv420p",
                 fps: float = 25.0, matrix: str | None = None, full_range: bool = False):
        self.path = os.fspath(path)
        if pix_fmt not in PIX_FMTS:
            raise InvalidVideoInput(f"raw YUV pixel format {pix_fmt!r} is not supported; use one of "
                                    f"{', '.join(PIX_FMTS)}")
        if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height \
                or width < 2 or height < 2:
            raise InvalidVideoInput(f"raw YUV frame size must be whole numbers of at least 2 pixels, got "
                                    f"{width!r} x {height!r}")
        matrix = matrix or ("bt709" if height >= 720 else "bt601")
        if matrix not in MATRICES:
            raise InvalidVideoInput(f"unknown colour matrix {matrix!r}; use one of {MATRICES}")
        self.width, self.height, self.pix_fmt = int(width), int(height), pix_fmt
        self.matrix, self.full_range = matrix, bool(full_range)
        fps = checked_fps(fps)
        if not os.path.isfile(self.path):
            raise InvalidVideoInput(f"no such file: {self.path!r}; check the path")
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        self._sample = 2 if pix_fmt == "yuv420p10le" else 1
        self._planes = (self.width * self.height, cw * ch, cw * ch)  # samples per plane
        self.frame_bytes = sum(self._planes) * self._sample
        size = os.path.getsize(self.path)
        n, rest = divmod(size, self.frame_bytes)
        if n == 0 or rest:
            raise InvalidVideoInput(
                f"{self.path} holds {size} bytes, not a whole number of {self.width}x{self.height} {pix_fmt} "
                f"frames ({self.frame_bytes} bytes each); check --size and --pix-fmt")
        depth = 10 if pix_fmt == "yuv420p10le" else 8
        self._info = ClipInfo(width=self.width, height=self.height, fps=fps, num_frames=n, duration=n / fps,
                              pix_fmt=pix_fmt, bit_depth=depth, codec="rawvideo", container="rawvideo",
                              source=self.path)

    @property
    def info(self) -> ClipInfo:
        return self._info

    def _read(self, indices: list[int]) -> YUV420Frames:
        distinct = sorted(set(indices))
        dtype = np.dtype("<u2") if self._sample == 2 else np.dtype(np.uint8)
        h, w = self.height, self.width
        ch, cw = (h + 1) // 2, (w + 1) // 2
        ys, us, vs = [], [], []
        with open(self.path, "rb") as f:
            for i in distinct:
                f.seek(i * self.frame_bytes)
                buf = f.read(self.frame_bytes)
                if len(buf) != self.frame_bytes:
                    raise InvalidVideoInput(f"{self.path} ended inside frame {i}; was it truncated while open?")
                a = np.frombuffer(buf, dtype)
                ny, nc = self._planes[0], self._planes[1]
                ys.append(a[:ny].reshape(h, w))
                if self.pix_fmt == "nv12":
                    uv = a[ny:].reshape(ch, cw, 2)
                    us.append(uv[..., 0])
                    vs.append(uv[..., 1])
                else:
                    us.append(a[ny:ny + nc].reshape(ch, cw))
                    vs.append(a[ny + nc:].reshape(ch, cw))
        pos = {i: k for k, i in enumerate(distinct)}
        order = [pos[i] for i in indices]
        planes = []
        for p in (ys, us, vs):
            stacked = np.stack([p[k] for k in order])
            planes.append(torch.from_numpy(stacked.astype(np.int32) if self._sample == 2 else stacked))
        return YUV420Frames(*planes, bit_depth=self._info.bit_depth, matrix=self.matrix, full_range=self.full_range)


_FORMATS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("vqametric_raw_yuv_format", default=None)


@contextlib.contextmanager
def raw_yuv_format(width: int, height: int, pix_fmt: str, matrix: str | None = None,
                   full_range: bool = False) -> Iterator[None]:
    """Within the block, ``.yuv`` paths (e.g. the command line's) open as :class:`RawYUV` of this
    size and pixel format, at the frame rate passed to ``open_clip`` (required)."""
    token = _FORMATS.set({"width": width, "height": height, "pix_fmt": pix_fmt, "matrix": matrix,
                          "full_range": full_range})
    try:
        yield
    finally:
        _FORMATS.reset(token)


def is_raw_yuv_path(path: str) -> bool:
    return path.lower().endswith(RAW_SUFFIXES)


def open_raw_path(path: str, fps: float | None = None) -> RawYUV:
    """A ``.yuv`` path as :class:`RawYUV` inside :func:`raw_yuv_format`; otherwise
    :class:`InvalidVideoInput` saying which options to pass."""
    fmt = _FORMATS.get()
    if fmt is None or fps is None:
        missing = "frame size, pixel format and frame rate" if fmt is None else "frame rate"
        raise InvalidVideoInput(f"{path} is raw YUV, a file without a header: pass its {missing}: {OPTIONS_HINT}")
    return RawYUV(path, fps=fps, **fmt)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``; :class:`InvalidVideoInput` for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise InvalidVideoInput(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}")
    return int(m.group(1)), int(m.group(2))
