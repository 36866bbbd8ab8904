"""Decoded pictures to arrays: the planes of a PyAV frame, and the sink that copies the requested
frames of a read into its output.

4:2:0 material (8-bit or 10-bit, I420 or NV12) stays as YUV planes at its native bit depth
(:class:`~vqametric.io.frames.YUV420Frames`); other formats (4:4:4, 4:2:2, gray, RGB) are converted
to RGB by FFmpeg at 8 bits, or to 16-bit RGB returned as float in [0, 1] for higher bit depths
(:class:`~vqametric.io.frames.RGBFrames`). Untagged YUV is BT.709 from 720 lines up and BT.601
below.
"""
from __future__ import annotations

from typing import Callable, Sequence

import av
import numpy as np
import torch

from ..errors import VideoDecodeError
from .frames import Frames, RGBFrames, YUV420Frames

# pix_fmt -> (bit depth, planar layout to request from FFmpeg)
_YUV420 = {
    "yuv420p": (8, "yuv420p"), "yuvj420p": (8, "yuv420p"), "nv12": (8, "yuv420p"), "nv21": (8, "yuv420p"),
    "yuv420p9le": (9, "yuv420p9le"), "yuv420p10le": (10, "yuv420p10le"), "p010le": (10, "yuv420p10le"),
    "yuv420p12le": (12, "yuv420p12le"), "yuv420p10be": (10, "yuv420p10le"),
}
# AVColorSpace values -> matrix names, and back (for FFmpeg's conversions)
_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_COLORSPACE = {"bt709": 1, "bt601": 5, "bt2020": 9}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def format_bit_depth(fmt: av.VideoFormat | None) -> int:
    """Bits per sample of a pixel format (its widest component); 8 when unknown."""
    if fmt is None:
        return 8
    try:
        return max(int(c.bits) for c in fmt.components)
    except Exception:  # pragma: no cover - exotic formats
        return 8


class FrameSink:
    """Output arrays for the frames at ``indices`` (any order, repeats allowed), filled as they decode.

    ``keep=True``: the arrays are allocated when the first frame arrives; each decoded frame is
    copied once into every output slot that asks for it, rotated counter-clockwise by
    ``90 * quarter_turns`` degrees. ``keep=False``: each decoded frame is held on its own (one copy
    for all its slots) until every one of its slots has been taken, then released.
    """

    def __init__(self, indices: list[int], quarter_turns: int, name: str,
                 on_frame: Callable[[int, Callable[[Sequence[int]], Frames]], None] | None = None,
                 keep: bool = True):
        self.on_frame = on_frame
        self.keep = keep
        self.slots: dict[int, list[int]] = {}
        for k, i in enumerate(indices):
            self.slots.setdefault(i, []).append(k)
        self.slot_frame = list(indices)
        self.held: dict[int, list[np.ndarray]] = {}   # keep=False: frame -> its planes
        self.untaken: dict[int, int] = {}             # keep=False: frame -> slots not yet taken
        self.wanted = sorted(self.slots)
        self.done: set[int] = set()
        self.count, self.turns, self.name = len(indices), quarter_turns, name
        self.layout: tuple | None = None
        self.arrays: list[np.ndarray] = []
        self.consumer_error: BaseException | None = None  # what on_frame raised, passed through as is

    @property
    def missing(self) -> list[int]:
        return [i for i in self.wanted if i not in self.done]

    def put(self, i: int, frame: av.VideoFrame) -> None:
        layout, planes = frame_planes(frame)
        planes = [np.rot90(p, self.turns) for p in planes]
        if self.layout is None:
            self.layout = layout
            self.dtype = {"rgb": np.uint8, "rgb16": np.float32}.get(layout[0]) or (
                np.uint8 if layout[1] == 8 else np.int16)
            if self.keep:
                self.arrays = [np.empty((self.count, *p.shape), self.dtype) for p in planes]
        elif layout != self.layout:
            raise VideoDecodeError(f"{self.name} changes pixel format or frame size mid-stream; re-encode it to "
                                   "one format and size (e.g. ffmpeg -i IN -pix_fmt yuv420p OUT.mp4)")
        targets = ([[out[k] for k in self.slots[i]] for out in self.arrays] if self.keep
                   else [[np.empty(p.shape, self.dtype)] for p in planes])
        for outs, p in zip(targets, planes):
            for out in outs:
                if layout[0] == "rgb16":
                    np.multiply(p, 1.0 / 65535.0, out=out, casting="unsafe")
                else:
                    out[...] = p
        if not self.keep:
            self.held[i] = [outs[0] for outs in targets]
            self.untaken[i] = len(self.slots[i])
        self.done.add(i)
        if self.on_frame is not None:
            try:
                self.on_frame(i, self.take)
            except BaseException as e:
                self.consumer_error = e
                raise

    def frames(self) -> Frames:
        return self._wrap(self.arrays)

    def take(self, slots: Sequence[int]) -> Frames:
        """A copy of the output slots ``slots`` (only slots already filled hold frames). With
        ``keep=False`` each slot can be taken once, and a frame is released with its last slot."""
        if self.keep:
            pos = np.asarray(slots, dtype=np.int64)
            return self._wrap([a[pos] for a in self.arrays])
        frames = [self.slot_frame[k] for k in slots]
        arrays = [np.stack([self.held[i][c] for i in frames]) for c in range(len(self.held[frames[0]]))]
        for i in frames:
            self.untaken[i] -= 1
            if self.untaken[i] == 0:
                del self.held[i]
        return self._wrap(arrays)

    def _wrap(self, arrays: list[np.ndarray]) -> Frames:
        kind = self.layout[0]
        tensors = [torch.from_numpy(a) for a in arrays]
        if kind == "yuv":
            _, depth, matrix, full, _ = self.layout
            return YUV420Frames(*tensors, bit_depth=depth, matrix=matrix, full_range=full)
        return RGBFrames.trusted(tensors[0])


def frame_planes(frame: av.VideoFrame) -> tuple[tuple, list[np.ndarray]]:
    """A decoded frame -> (layout, views of its planes without copying).

    Layouts: ``("yuv", depth, matrix, full_range, shapes)`` with ``uint8``/``uint16`` Y, U, V planes;
    ``("rgb", h, w)`` with one ``uint8`` ``(h, w, 3)`` plane; ``("rgb16", h, w)`` with one ``uint16`` plane.
    Untagged YUV is BT.709 from 720 lines up and BT.601 below, for 4:2:0 and the RGB conversion alike.
    """
    name = frame.format.name
    tagged = int(frame.colorspace or 0) in _MATRIX
    matrix = _MATRIX[int(frame.colorspace)] if tagged else "bt709" if frame.height >= 720 else "bt601"
    if name in _YUV420:
        depth, planar = _YUV420[name]
        if name != planar:
            frame = frame.reformat(format=planar)
        dtype = np.uint8 if depth == 8 else np.uint16
        planes = [plane_view(frame.planes[c], dtype) for c in range(3)]
        full = name == "yuvj420p" or int(frame.color_range or 0) == _FULL_RANGE
        return ("yuv", depth, matrix, full, tuple(p.shape for p in planes)), planes
    colorspace = None if tagged or frame.format.is_rgb else _COLORSPACE[matrix]
    if format_bit_depth(frame.format) > 8:
        rgb = frame.reformat(format="rgb48le", src_colorspace=colorspace)
        return ("rgb16", rgb.height, rgb.width), [plane_view(rgb.planes[0], np.uint16, 3)]
    rgb = frame.reformat(format="rgb24", src_colorspace=colorspace)
    return ("rgb", rgb.height, rgb.width), [plane_view(rgb.planes[0], np.uint8, 3)]


def plane_view(plane, dtype, channels: int = 1) -> np.ndarray:
    """``(height, width)`` (or ``(height, width, channels)``) view of a plane, row padding skipped."""
    itemsize = np.dtype(dtype).itemsize
    a = np.frombuffer(plane, dtype=dtype, count=plane.height * plane.line_size // itemsize)
    a = a.reshape(plane.height, plane.line_size // itemsize)[:, : plane.width * channels]
    return a if channels == 1 else a.reshape(plane.height, plane.width, channels)
