"""Streaming decode with PyAV: only the planned frames, bounded memory.

How a :class:`FileClip` finds frames:

1. On first use it demuxes the video stream once (packets only, no picture decoding) to learn the
   exact frame count, every frame's presentation timestamp (variable frame rate is exact) and where
   the keyframes are. Header frame counts are often missing (Matroska, WebM) or wrong.
2. :meth:`FileClip.read` visits the requested frames in presentation order. When the next one lies
   beyond the next keyframe it seeks (to the keyframe at or before it) instead of decoding the gap;
   otherwise it decodes forward. Frames not requested are dropped as soon as they are decoded, so
   memory is bounded by the number of requested frames, not by the clip length.
3. 4:2:0 material (8-bit or 10-bit, I420 or NV12) stays as YUV planes at its native bit depth; the
   preprocessing stage converts it. Other formats (4:4:4, 4:2:2, gray, RGB) are converted to RGB by
   FFmpeg at 8 bits, or to 16-bit RGB (returned as float) for higher bit depths.

Streams whose packets carry no usable timestamps (some AVI and raw streams) fall back to plain
sequential decoding from the start, still dropping unrequested frames.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np
import torch

from ..errors import InvalidVideoInput, VideoDecodeError
from .clip import Clip, ClipInfo
from .frames import Frames, RGBFrames, YUV420Frames

# pix_fmt -> (bit depth, planar layout to request from FFmpeg)
_YUV420 = {
    "yuv420p": (8, "yuv420p"), "yuvj420p": (8, "yuv420p"), "nv12": (8, "yuv420p"), "nv21": (8, "yuv420p"),
    "yuv420p9le": (9, "yuv420p9le"), "yuv420p10le": (10, "yuv420p10le"), "p010le": (10, "yuv420p10le"),
    "yuv420p12le": (12, "yuv420p12le"), "yuv420p10be": (10, "yuv420p10le"),
}
# AVColorSpace values -> matrix names
_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _bit_depth(fmt: av.VideoFormat | None) -> int:
    if fmt is None:
        return 8
    try:
        return max(int(c.bits) for c in fmt.components)
    except Exception:  # pragma: no cover - exotic formats
        return 8


@dataclass(frozen=True)
class _PacketIndex:
    pts: tuple[int, ...]           # presentation timestamps, sorted (stream time base)
    keyframes: tuple[int, ...]     # positions (into pts) of keyframes, sorted
    seekable: bool                 # timestamps are present and unique

    @property
    def position(self) -> dict[int, int]:
        """Presentation timestamp -> frame index."""
        if "_position" not in self.__dict__:
            object.__setattr__(self, "_position", {p: i for i, p in enumerate(self.pts)})
        return self.__dict__["_position"]


class FileClip(Clip):
    """A video file (path, bytes or binary file object) decoded with PyAV.

    The container stays open while the clip lives; use it as a context manager or call
    :meth:`close`. Construction reads only the container header; the first access to
    :attr:`info` demuxes the packet index (no picture decoding).
    """

    def __init__(self, source: str | BinaryIO, name: str | None = None):
        self.name = name or str(source)
        if isinstance(source, str):
            _check_path(source)
        self._source = source
        try:
            self._container = av.open(source, mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise VideoDecodeError(
                f"could not open {self.name} as a video container ({e.__class__.__name__}: {e.strerror or e}); "
                "the file may be truncated, corrupt or not a video: check it with `vqametric info`, "
                "re-download it or re-encode it") from e
        except Exception as e:  # e.g. a file object that raises on read
            raise VideoDecodeError(f"could not read {self.name}: {e}") from e
        streams = self._container.streams.video
        if not streams:
            kinds = sorted({s.type for s in self._container.streams}) or ["none"]
            self.close()
            raise InvalidVideoInput(f"{self.name} has no video stream (streams: {', '.join(kinds)}); "
                                    "pass a file that contains video, e.g. not an audio-only file")
        self._stream = streams[0]
        self._stream.thread_type = "AUTO"
        self._index: _PacketIndex | None = None
        self._info: ClipInfo | None = None

    # -- metadata ---------------------------------------------------------------------------
    def _build_index(self) -> _PacketIndex:
        st = self._stream
        pts, keys = [], []
        try:
            for packet in self._container.demux(st):
                if packet.size == 0:  # flush packet at end of stream
                    continue
                t = packet.pts if packet.pts is not None else packet.dts
                pts.append(t)
                keys.append(bool(packet.is_keyframe))
        except av.error.FFmpegError as e:
            if not pts:
                raise VideoDecodeError(f"could not read packets from {self.name} ({e}); the file may be "
                                       "truncated or corrupt: re-download or re-encode it") from e
            # a truncated tail: keep the packets that were read
        if not pts:
            raise InvalidVideoInput(f"{self.name} has a video stream with zero frames; nothing to score")
        seekable = all(t is not None for t in pts) and len(set(pts)) == len(pts)
        if seekable:
            order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
            spts = tuple(int(pts[i]) for i in order)
            kpos = sorted(int(np.searchsorted(spts, pts[i])) for i in range(len(pts)) if keys[i])
            if not kpos or kpos[0] != 0:
                kpos = [0] + kpos
            return _PacketIndex(spts, tuple(kpos), True)
        return _PacketIndex(tuple(range(len(pts))), (0,), False)

    @property
    def index(self) -> _PacketIndex:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    @property
    def info(self) -> ClipInfo:
        if self._info is None:
            self._info = self._make_info()
        return self._info

    def _make_info(self) -> ClipInfo:
        st, cc = self._stream, self._stream.codec_context
        idx = self.index
        tb = float(st.time_base) if st.time_base else None
        n = len(idx.pts)
        rate = st.average_rate or st.guessed_rate or st.base_rate
        fps = float(rate) if rate else 0.0
        timestamps = None
        if idx.seekable and tb:
            t0 = idx.pts[0]
            timestamps = tuple((p - t0) * tb for p in idx.pts)
            if n > 1:
                span = timestamps[-1] - timestamps[0]
                if span > 0:
                    fps = (n - 1) / span if not fps or abs(fps - (n - 1) / span) > 0.05 * fps else fps
        if not fps or not np.isfinite(fps):
            fps = 25.0
        duration = n / fps
        rotation = self._rotation()
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w == 0 or h == 0:
            raise VideoDecodeError(f"{self.name}: the video stream declares no frame size; re-encode it")
        if rotation % 180:
            w, h = h, w
        fmt = cc.format
        return ClipInfo(width=w, height=h, fps=float(fps), num_frames=n, duration=float(duration),
                        pix_fmt=str(cc.pix_fmt or (fmt.name if fmt else "unknown")), bit_depth=_bit_depth(fmt),
                        rotation=rotation, codec=cc.name, container=self._container.format.name,
                        source=self.name, timestamps=timestamps)

    def _rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0/90/180/270), from the display matrix.

        PyAV exposes the display matrix on decoded frames only, so this decodes the first frame.
        """
        if not hasattr(self, "_rot"):
            self._rot = 0
            try:
                for frame in self._decode_from(0):
                    self._rot = int(round((frame.rotation or 0) / 90.0)) % 4 * 90
                    break
            except av.error.FFmpegError:
                pass
        return self._rot

    # -- decoding ---------------------------------------------------------------------------
    def _decode_from(self, position: int):
        """Yield decoded frames starting at the keyframe at or before index ``position``."""
        idx, st = self.index, self._stream
        self._container.seek(idx.pts[position] if idx.seekable else 0, stream=st, backward=True,
                             any_frame=False)
        yield from self._container.decode(st)

    def _read(self, indices: list[int]) -> Frames:
        idx = self.index
        wanted = sorted(set(indices))
        got: dict[int, object] = {}
        try:
            if idx.seekable:
                self._read_seeking(wanted, got)
            if len(got) < len(wanted):  # no timestamps, or a seek that landed past its target
                got.clear()
                self._read_sequential(wanted, got)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"decoding {self.name} failed ({e}); the file may be corrupt or "
                                   "truncated: re-encode it") from e
        missing = [i for i in wanted if i not in got]
        if missing:
            raise VideoDecodeError(f"{self.name}: frame {missing[0]} could not be decoded although the "
                                   "container lists it; the stream is probably truncated or corrupt")
        rot = self.info.rotation // 90
        return _stack([got[i] for i in indices]).rotate(rot)

    def _read_seeking(self, wanted: list[int], got: dict) -> None:
        """Fill ``got`` by seeking to keyframes; stop early (caller falls back) on any surprise."""
        idx = self.index
        want = set(wanted)
        frames, last = None, -1  # decoder generator and index of the last frame it gave
        for target in wanted:
            key = idx.keyframes[bisect.bisect_right(idx.keyframes, target) - 1]
            if frames is None or key > last:
                frames, last = self._decode_from(key), -1
            for frame in frames:
                i = idx.position.get(frame.pts, -1) if frame.pts is not None else -1
                if i < 0:
                    continue
                if i > target:
                    return  # the seek landed past the target or the frame was dropped
                last = i
                if i in want:
                    got[i] = _convert(frame)
                if i == target:
                    break
            else:
                frames = None
            if target not in got:
                return

    def _read_sequential(self, wanted: list[int], got: dict) -> None:
        want = set(wanted)
        self._container.seek(0, stream=self._stream)
        for i, frame in enumerate(self._container.decode(self._stream)):
            if i in want:
                got[i] = _convert(frame)
                if len(got) == len(want):
                    break

    def close(self) -> None:
        c = getattr(self, "_container", None)
        if c is not None:
            c.close()
            self._container = None


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise InvalidVideoInput(f"no such file: {path!r}; check the path (it is resolved against "
                                f"the current directory {os.getcwd()!r})")
    if os.path.isdir(path):
        raise InvalidVideoInput(f"{path!r} is a directory; pass a video file (the CLI accepts several "
                                "paths, e.g. `vqametric score dir/*.mp4`)")
    if os.path.getsize(path) == 0:
        raise InvalidVideoInput(f"{path!r} is empty (0 bytes); the write or download probably failed")


def _plane(plane, dtype) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    a = np.frombuffer(plane, dtype=dtype, count=plane.height * plane.line_size // itemsize)
    return a.reshape(plane.height, plane.line_size // itemsize)[:, : plane.width].copy()


def _convert(frame: av.VideoFrame):
    """A decoded frame -> ('yuv', (y, u, v), depth, matrix, full) or ('rgb', array (H, W, 3))."""
    name = frame.format.name
    if name in _YUV420:
        depth, planar = _YUV420[name]
        if name != planar:
            frame = frame.reformat(format=planar)
        dt = np.uint8 if depth == 8 else np.uint16
        y, u, v = (_plane(frame.planes[i], dt) for i in range(3))
        if depth > 8:
            y, u, v = (p.astype(np.int16) for p in (y, u, v))
        matrix = _MATRIX.get(int(frame.colorspace or 0), "bt709" if frame.height >= 720 else "bt601")
        full = name == "yuvj420p" or int(frame.color_range or 0) == _FULL_RANGE
        return ("yuv", (y, u, v), depth, matrix, full)
    if _bit_depth(frame.format) > 8:
        return ("rgb", frame.reformat(format="rgb48le").to_ndarray().astype(np.float32) / 65535.0)
    return ("rgb", frame.to_ndarray(format="rgb24"))


def _stack(items: list) -> Frames:
    kinds = {it[0] for it in items}
    if kinds == {"yuv"} and len({it[2:] for it in items}) == 1 and len({it[1][0].shape for it in items}) == 1:
        _, _, depth, matrix, full = items[0]
        planes = [torch.from_numpy(np.stack([it[1][k] for it in items])) for k in range(3)]
        return YUV420Frames(*planes, bit_depth=depth, matrix=matrix, full_range=full)
    if kinds == {"rgb"} and len({it[1].shape for it in items}) == 1:
        return RGBFrames(torch.from_numpy(np.stack([it[1] for it in items])))
    raise VideoDecodeError("the stream changes pixel format or frame size mid-stream; re-encode it to "
                           "one format and size (e.g. ffmpeg -i in -pix_fmt yuv420p out.mp4)")
