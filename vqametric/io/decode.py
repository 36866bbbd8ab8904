"""Streaming decode with PyAV: only the planned frames, bounded memory.

How a :class:`FileClip` finds frames:

1. Metadata. The first access to :attr:`FileClip.info` demuxes the video stream once (packets
   only, no picture decoding) to learn the exact frame count, every frame's presentation timestamp
   (variable frame rate is exact) and where the keyframes are; header frame counts are often
   missing (Matroska, WebM) or wrong. Packets the container marks as discarded (MP4 edit lists, e.g.
   a clip cut with ``ffmpeg -ss T -i in.mp4 -c copy``) are decoded as references but never shown,
   so they are not frames. Then it decodes the first frame, and only that one, because PyAV
   exposes the display rotation on decoded frames only.
2. :meth:`FileClip.read` visits the requested frames in presentation order. When the next one lies
   beyond the next keyframe it seeks (to the keyframe at or before it) instead of decoding the gap;
   otherwise it decodes forward. Each requested frame is copied once, straight into the output
   (rotated upright on the way); other frames are dropped as soon as they are decoded, so memory is
   bounded by the number of requested frames, not by the clip length.

   Passing over frames that are not requested, the decoder skips the pictures no other picture
   references (FFmpeg's ``skip_frame = NONREF``, chosen packet by packet: a packet whose timestamp
   is a requested frame's decodes normally). Requested frames are bit-identical to a full decode:
   only pictures nothing predicts from are left out. On long-GOP files (x264's default keyframe
   interval is 250 frames) this is most of the saving over decoding every frame. It is used only
   for decoders where a picture's "non-reference" status is exact and the setting takes effect
   per packet, frame threads included: H.264, HEVC with one temporal sub-layer, MPEG-1/2 (see
   :data:`SKIP_CODECS`). VP9 has no non-reference skipping in FFmpeg and ``libdav1d`` (AV1) reads
   the setting once, when the decoder opens; they decode every frame of a stretch, as before.
   ``VQAMETRIC_NO_SKIP=1`` in the environment (or :data:`SKIP_NONREF` ``= False``) turns it off.
3. 4:2:0 material (8-bit or 10-bit, I420 or NV12) stays as YUV planes at its native bit depth; the
   preprocessing stage converts it. Other formats (4:4:4, 4:2:2, gray, RGB) are converted to RGB by
   FFmpeg at 8 bits, or to 16-bit RGB (returned as float) for higher bit depths
   (:mod:`vqametric.io.planes`).
4. Truncated files. The clip is the frames whose data is complete: a packet cut short at the end is
   dropped and never decoded. Where the container shows the loss (a packet cut short, fewer packets
   than the header lists) a :class:`RuntimeWarning` names the file. A file that lost its index (an
   MP4 cut before its ``moov`` box) cannot be opened and raises :class:`VideoDecodeError`.

Streams whose packets carry no usable timestamps (some AVI and raw streams) fall back to plain
sequential decoding from the start, still dropping unrequested frames.
"""
from __future__ import annotations

import bisect
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Callable, Iterator, Sequence, TypeVar

import av
import numpy as np

from ..errors import InvalidVideoInput, VideoDecodeError, VQAMetricError
from .clip import Clip, ClipInfo
from .frames import Frames
from .planes import FrameSink, format_bit_depth, frame_planes
from .probe import check_file_object, check_path, hevc_sub_layers

# former private names of what planes.py and probe.py now hold, still importable from here
_FrameSink, _planes, _hevc_sub_layers = FrameSink, frame_planes, hevc_sub_layers

T = TypeVar("T")
DEFAULT_FILE_FPS = 25.0  # when a stream declares no rate and carries no timestamps

# Skip non-reference pictures between requested frames (see the module docstring). A switch for
# benchmarks and for ruling it out when debugging; the frames read are the same either way.
SKIP_NONREF = os.environ.get("VQAMETRIC_NO_SKIP", "").strip().lower() in ("", "0", "false", "no")
# Decoders (FFmpeg names) whose skip_frame=NONREF drops exactly the pictures that nothing references
# and is read per packet (frame threads copy it from the user's context as each packet is handed to
# a thread). HEVC only with a single temporal sub-layer: see _skip_safe.
SKIP_CODECS = frozenset({"h264", "hevc", "mpeg2video", "mpeg1video"})
_decoder_threads = 0  # FFmpeg's thread_count: 0 = one per core (FFmpeg's choice)


def set_decoder_threads(threads: int | None) -> None:
    """Decoder threads for every :class:`FileClip` opened afterwards (``None`` or 0: FFmpeg's
    choice, one per core, the default, best for one scoring job at a time; 1: single-threaded,
    for N parallel jobs that already fill the cores). Frames are identical whatever the count."""
    global _decoder_threads
    threads = int(threads or 0)
    if threads < 0:
        raise ValueError(f"threads={threads}: pass 0 or None (one per core) or a positive count")
    _decoder_threads = threads


def get_decoder_threads() -> int:
    """The decoder thread count :class:`FileClip` uses by default (0: one per core)."""
    return _decoder_threads


@dataclass(frozen=True)
class _PacketIndex:
    pts: tuple[int, ...]           # presentation timestamps of the frames, ascending (stream time base)
    keyframes: tuple[int, ...]     # frame positions of keyframes, ascending, starting with 0
    seekable: bool                 # timestamps are present and unique
    last_duration: int             # duration of the last frame (stream time base); 0 when unknown
    truncated: bool                # the file ends early: packets are missing or cut short

    @property
    def position(self) -> dict[int, int]:
        """Presentation timestamp -> frame index."""
        if "_position" not in self.__dict__:
            object.__setattr__(self, "_position", {p: i for i, p in enumerate(self.pts)})
        return self.__dict__["_position"]


class FileClip(Clip):
    """A video file (path, bytes or a seekable binary file object, read from its start) decoded with PyAV.

    The container stays open while the clip lives; use it as a context manager or call
    :meth:`close`. Construction reads only the container header; the first access to
    :attr:`info` demuxes the packet index and decodes the first frame (see the module docstring).
    ``threads``: decoder threads (default: :func:`set_decoder_threads`'s, one per core unless set;
    1 for parallel jobs).
    """

    def __init__(self, source: str | BinaryIO, name: str | None = None, threads: int | None = None):
        self.name = name or str(source)
        self._container = None
        if threads is not None and int(threads) < 0:
            raise ValueError(f"threads={threads}: pass None (see set_decoder_threads), 0 (one per core) "
                             "or a positive count")
        self._threads = threads  # None: the module default, read at each (re)open
        if isinstance(source, str):
            check_path(source)
        else:
            check_file_object(source, self.name)
        self._source = source
        self._open()
        streams = self._container.streams.video
        if not streams:
            kinds = sorted({s.type for s in self._container.streams})
            self.close()
            what = f"only {', '.join(kinds)} streams" if kinds else "no streams (an empty recording?)"
            raise InvalidVideoInput(f"{self.name} has no video stream ({what}); pass a file that contains "
                                    "video frames")
        self._index: _PacketIndex | None = None
        self._info: ClipInfo | None = None
        self._keep_pts: set[int] | None = None  # see _decode_from

    def _open(self) -> None:
        """(Re)open the container at the start of the file."""
        if self._container is not None:
            self._container.close()
            self._container = None
        try:
            if not isinstance(self._source, str):
                self._source.seek(0)
            self._container = av.open(self._source, mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise VideoDecodeError(
                f"could not open {self.name} as a video ({e.__class__.__name__}: {e.strerror or e}): it is not "
                "a video file, or it is truncated or corrupt (an MP4 cut short loses its index). Check that the "
                "download or copy completed, or re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)") from e
        except Exception as e:  # e.g. a file object that raises on read
            raise VideoDecodeError(f"could not read {self.name} ({type(e).__name__}: {e}); pass a readable, "
                                   "seekable binary file object, or the path or bytes of the video") from e
        self._fresh = True
        if self._container.streams.video:
            self._stream = self._container.streams.video[0]
            if self._stream.codec_context is None:  # FFmpeg has no decoder for this codec
                self.close()
                raise VideoDecodeError(
                    f"{self.name}: the video codec is unknown to the bundled FFmpeg (PyAV {av.__version__}), or "
                    "the codec tag is damaged; re-encode the file with a common codec (e.g. ffmpeg -i IN "
                    "-c:v libx264 OUT.mp4)")
            self._stream.thread_type = "AUTO"
            threads = _decoder_threads if self._threads is None else int(self._threads)
            if threads:
                self._stream.codec_context.thread_count = threads

    def _rewind(self) -> None:
        """Go to the start of the file. Reopens instead of seeking (and after :meth:`close`): not
        every demuxer can seek back to the start (e.g. a single JPEG image)."""
        if not self._fresh:
            self._open()
        self._fresh = False

    # -- metadata ---------------------------------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` from the stream header, before any picture is decoded (coded
        orientation: a 90-degree display rotation swaps them in :attr:`info`)."""
        cc = self._stream.codec_context
        return int(cc.width or 0), int(cc.height or 0)

    def _build_index(self) -> _PacketIndex:
        pts, keys, durations, corrupt = [], [], [], []
        packets, failed = 0, False
        self._rewind()
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # flush packet at end of stream
                    continue
                packets += 1
                if packet.is_discard:  # decoded as a reference only (edit lists): never shown
                    continue
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                keys.append(bool(packet.is_keyframe))
                durations.append(int(packet.duration or 0))
                corrupt.append(bool(packet.is_corrupt))
        except av.error.FFmpegError as e:
            if not pts:
                raise VideoDecodeError(f"could not read packets from {self.name} ({e}); the file is truncated "
                                       "or corrupt: re-download or re-encode it") from e
            failed = True  # a damaged tail: keep the packets read before it
        while corrupt and corrupt[-1]:  # a packet cut short at the end of a truncated file
            for column in (pts, keys, durations, corrupt):
                column.pop()
            failed = True
        if not pts:
            if failed:
                raise VideoDecodeError(f"{self.name} is truncated before the end of its first frame; "
                                       "re-download or re-encode it")
            raise InvalidVideoInput(f"{self.name} has a video stream with zero frames; pass a video with at "
                                    "least one frame (the recording or encode probably failed)")
        listed = int(self._stream.frames or 0)
        truncated = failed or packets < listed
        if truncated:
            of = f" of the {listed} its header lists" if packets < listed else ""
            warnings.warn(f"{self.name} is truncated: only its first {len(pts)} complete frame(s){of} are "
                          "read and scored; re-download or re-encode the file to score all of it",
                          RuntimeWarning)
        seekable = all(t is not None for t in pts) and len(set(pts)) == len(pts)
        if not seekable:
            return _PacketIndex(tuple(range(len(pts))), (0,), False, 0, truncated)
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        spts = tuple(int(pts[i]) for i in order)
        kpos = sorted(int(np.searchsorted(spts, pts[i])) for i in range(len(pts)) if keys[i])
        if not kpos or kpos[0] != 0:
            kpos = [0] + kpos
        return _PacketIndex(spts, tuple(kpos), True, durations[int(order[-1])], truncated)

    @property
    def index(self) -> _PacketIndex:
        if self._index is None:
            self._index = self._typed(self._build_index)
        return self._index

    @property
    def info(self) -> ClipInfo:
        if self._info is None:
            self._info = self._typed(self._make_info)
        return self._info

    def _typed(self, fn: Callable[[], T]) -> T:
        """``fn()``, with any unexpected decoder failure raised as :class:`VideoDecodeError`: one damaged
        file must never surface as a bare ``AttributeError`` or ``IndexError`` from the decoding library."""
        try:
            return fn()
        except (VQAMetricError, MemoryError):
            raise
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"decoding {self.name} failed ({e}); the file is corrupt or truncated: "
                                   "re-encode it") from e
        except Exception as e:
            raise VideoDecodeError(f"{self.name} could not be read ({type(e).__name__}: {e}); the file is probably "
                                   "damaged: re-download or re-encode it") from e

    def _make_info(self) -> ClipInfo:
        """Frame count and timing come from the packet index; size and format from the stream header.

        ``duration`` spans the first frame's start to the last frame's end (its packet duration, or
        the mean frame interval). ``fps`` is the header's average rate unless it is more than 5% off
        ``num_frames / duration``, which is used then (variable frame rate, missing headers).
        """
        idx = self.index
        rotation = self._rotation()  # decodes the first frame (and may reopen the container)
        st, cc = self._stream, self._stream.codec_context
        n = len(idx.pts)
        rate = st.average_rate or st.guessed_rate or st.base_rate
        fps = float(rate) if rate else 0.0
        timestamps, duration = None, 0.0
        if idx.seekable and st.time_base:
            tb = Fraction(st.time_base)
            t0 = idx.pts[0]
            timestamps = tuple(float((p - t0) * tb) for p in idx.pts)
            span = (idx.pts[-1] - t0) * tb
            last = idx.last_duration * tb if idx.last_duration > 0 else (span / (n - 1) if n > 1 else 0)
            duration = float(span + last)
            if duration > 0 and (not fps or abs(fps - n / duration) > 0.05 * fps):
                fps = n / duration
        if not fps or not np.isfinite(fps):
            fps = DEFAULT_FILE_FPS
        if duration <= 0:
            duration = n / fps
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w == 0 or h == 0:
            raise VideoDecodeError(f"{self.name}: the video stream declares no frame size; re-encode it")
        if rotation % 180:
            w, h = h, w
        fmt = cc.format
        return ClipInfo(width=w, height=h, fps=float(fps), num_frames=n, duration=duration,
                        pix_fmt=str(cc.pix_fmt or (fmt.name if fmt else "unknown")), bit_depth=format_bit_depth(fmt),
                        rotation=rotation, codec=cc.name, container=self._container.format.name,
                        source=self.name, timestamps=timestamps)

    def _rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0/90/180/270), from the display matrix.

        PyAV exposes the display matrix on decoded frames only, so this decodes the first frame.
        """
        try:
            for frame in self._decode_from(0):
                return int(round((frame.rotation or 0) / 90.0)) % 4 * 90
        except av.error.FFmpegError:
            pass  # an undecodable first frame: reading it reports the error
        return 0

    # -- decoding ---------------------------------------------------------------------------
    def _decode_from(self, position: int) -> Iterator[av.VideoFrame]:
        """Decoded frames (presentation order) from the keyframe at or before frame ``position``.

        Every picture :class:`FileClip` decodes comes from here. In a truncated file the decoder is
        flushed where the complete packets end, so a packet cut short is never decoded.

        While :meth:`_read_seeking` runs, ``self._keep_pts`` holds the timestamps of the frames it
        keeps; then (if skipping is on and safe for this stream) a packet whose timestamp is not
        among them is decoded with ``skip_frame = NONREF``: if nothing references its picture, it is
        not decoded and no frame comes out for it. Every frame that does come out is exactly what a
        full decode gives.
        """
        idx = self.index
        wanted_pts = self._keep_pts
        if not idx.seekable or (position == 0 and (self._fresh or not self._seeks_to_start())):
            self._rewind()
        elif position == 0:  # back to the start of an MP4 or Matroska file: a seek, not a reopen
            try:
                self._container.seek(idx.pts[0], stream=self._stream, backward=True, any_frame=False)
                self._fresh = False
            except av.error.FFmpegError:  # e.g. a fragmented MP4 without an index
                self._fresh = False
                self._rewind()
        else:
            if self._container is None:  # closed: reopen
                self._open()
            self._container.seek(idx.pts[position], stream=self._stream, backward=True, any_frame=False)
            self._fresh = False
        st = self._stream
        cc = st.codec_context
        skip = wanted_pts is not None and self._skip_safe()
        mode = "DEFAULT"
        cc.skip_frame = mode  # a fresh or reopened context is already at DEFAULT; a seek keeps the context
        packets = self._container.demux(st)
        while True:
            try:
                packet = next(packets, None)
            except av.error.FFmpegError:
                if not idx.truncated:
                    raise
                packet = None
            if packet is not None and packet.is_corrupt and idx.truncated:
                packet = None
            if skip and packet is not None:
                # a packet without a timestamp, or one of a kept frame, decodes in full
                want = packet.pts is None or packet.pts in wanted_pts
                if mode != ("DEFAULT" if want else "NONREF"):
                    mode = "DEFAULT" if want else "NONREF"
                    cc.skip_frame = mode  # read when this packet is handed to the decoder (or its thread)
            yield from st.decode(packet)  # None (or the demuxer's empty last packet) flushes
            if packet is None or packet.size == 0:
                return

    def _seeks_to_start(self) -> bool:
        """Whether a seek back to the first frame replaces reopening the file (which costs a container
        probe): MP4/MOV and Matroska/WebM, whose indexes make seeking exact, with the container open."""
        fmt = set(self._container.format.name.split(",")) if self._container is not None else set()
        return bool(fmt & {"mov", "mp4", "matroska", "webm"})

    def _skip_safe(self) -> bool:
        """Whether non-reference pictures of this stream may be skipped (see :data:`SKIP_CODECS`)."""
        if not SKIP_NONREF:
            return False
        if "_skip_ok" not in self.__dict__:
            cc = self._stream.codec_context
            name = cc.name
            ok = name in SKIP_CODECS
            if ok and name == "hevc":
                ok = hevc_sub_layers(cc.extradata) == 1
            self._skip_ok = ok
        return self._skip_ok

    def _read(self, indices: list[int]) -> Frames:
        return self.read_streaming(indices, None)

    def read_streaming(self, indices: Sequence[int],
                       on_frame: Callable[[int, Callable[[Sequence[int]], Frames]], None] | None,
                       keep: bool = True) -> Frames | None:
        """:meth:`read`, telling ``on_frame(i, take)`` each time frame ``i`` (a source index) has
        been copied into every output slot that asks for it. ``take(slots)`` returns a copy of
        output slots ``slots`` (positions in ``indices``) as :class:`Frames`; slots of frames
        already reported hold their final pixels. A frame may be reported twice (a fallback to
        sequential decoding re-decodes it into the same slots, with the same pixels). Exceptions
        raised by ``on_frame`` stop decoding and propagate.

        ``keep=False``: frames are held only until each of their slots has been taken once, and
        ``None`` is returned; memory is then bounded by the frames not yet taken, not by
        ``len(indices)`` (for consumers that process frames as they arrive)."""
        sink = FrameSink(self.checked_indices(indices), self.info.rotation // 90, self.name, on_frame, keep)

        def decode() -> None:
            if self.index.seekable:
                self._read_seeking(sink)
            if sink.missing:  # no timestamps, or a seek that landed past its target
                sink.done.clear()
                self._read_sequential(sink)
        try:
            self._typed(decode)
        except VideoDecodeError as e:
            if sink.consumer_error is not None and e.__cause__ is sink.consumer_error:
                raise sink.consumer_error  # the consumer's own failure, as it was raised
            raise
        if sink.missing:
            raise VideoDecodeError(f"{self.name}: frame {sink.missing[0]} could not be decoded although the "
                                   "container lists it; the stream is corrupt: re-encode it")
        return sink.frames() if keep else None

    def _read_seeking(self, sink: FrameSink) -> None:
        """Fill ``sink`` by seeking to keyframes; stop early (caller falls back) on any surprise."""
        self._keep_pts = {self.index.pts[i] for i in sink.wanted}  # lets _decode_from skip the others
        try:
            self._read_seeking_frames(sink)
        finally:
            self._keep_pts = None

    def _read_seeking_frames(self, sink: FrameSink) -> None:
        idx = self.index
        frames, last = None, -1  # decoder generator and index of the last frame it gave
        for target in sink.wanted:
            key = idx.keyframes[bisect.bisect_right(idx.keyframes, target) - 1]
            if frames is None or key > last + 1:
                frames, last = self._decode_from(key), -1
            for frame in frames:
                i = idx.position.get(frame.pts, -1) if frame.pts is not None else -1
                if i < key:  # no timestamp, or a leading picture of an open GOP
                    continue
                if i > target:
                    return  # the seek landed past the target or the frame was dropped
                last = i
                if i in sink.slots:
                    sink.put(i, frame)
                if i == target:
                    break
            else:
                frames = None
            if target not in sink.done:
                return

    def _read_sequential(self, sink: FrameSink) -> None:
        for i, frame in enumerate(self._decode_from(0)):
            if i in sink.slots:
                sink.put(i, frame)
                if not sink.missing:
                    break

    def close(self) -> None:
        """Release the container; a later read reopens it."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self._fresh = False
