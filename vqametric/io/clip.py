"""``Clip``: a lazy video handle with metadata and random frame access, and
:class:`TensorClip`, a clip held in memory.

Subclasses: :class:`~vqametric.io.decode.FileClip` (files, bytes, file objects, decoded with
PyAV) and :class:`~vqametric.io.rawyuv.RawYUV` (headerless YUV files). Metadata is read without
decoding pictures; :meth:`Clip.read` decodes only the frames asked for.
:func:`vqametric.io.open_clip` (:mod:`vqametric.io.sources`) opens any supported source.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..errors import InvalidVideoInput
from .frames import Frames, YUV420Frames

DEFAULT_TENSOR_FPS = 30.0


@dataclass(frozen=True)
class ClipInfo:
    """Metadata of a clip. ``width``/``height`` are the display size (after rotation).

    ``rotation``: the counter-clockwise turn (0/90/180/270 degrees) applied to decoded pictures to
    show them upright. ``duration`` (seconds) runs from the first frame's start to the last frame's
    end; ``fps`` is the average frame rate.

    ``timestamps`` (seconds, presentation order, one per frame) is set for decoded files so that
    variable-frame-rate clips are sampled by time; ``None`` means constant ``fps``.
    """

    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    pix_fmt: str
    bit_depth: int
    rotation: int = 0
    codec: str | None = None
    container: str | None = None
    source: str = "<tensor>"
    timestamps: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def is_variable_frame_rate(self) -> bool:
        if not self.timestamps or len(self.timestamps) < 3:
            return False
        d = np.diff(np.asarray(self.timestamps))
        return bool(d.max() - d.min() > 0.25 * max(float(np.median(d)), 1e-9))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("timestamps")
        d["variable_frame_rate"] = self.is_variable_frame_rate
        return d


class Clip:
    """A video clip. Subclasses implement :meth:`info` and :meth:`_read`."""

    @property
    def info(self) -> ClipInfo:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the coded frames, known without decoding a picture."""
        return self.info.width, self.info.height

    def read(self, indices: Sequence[int]) -> Frames:
        """Decode the frames at ``indices`` (presentation order, any order, repeats allowed).

        Returns :class:`RGBFrames` or :class:`YUV420Frames` with ``len(indices)`` frames, upright
        (rotation metadata applied).
        """
        return self._read(self.checked_indices(indices))

    def checked_indices(self, indices: Sequence[int]) -> list[int]:
        """``indices`` as ints; :class:`InvalidVideoInput` if empty or out of range."""
        n = self.info.num_frames
        idx = [int(i) for i in indices]
        if not idx:
            raise InvalidVideoInput("no frame indices requested; a sampling plan needs at least one frame")
        bad = [i for i in idx if i < 0 or i >= n]
        if bad:
            raise InvalidVideoInput(f"frame index {bad[0]} is out of range for {self.info.source} "
                                    f"with {n} frame(s)")
        return idx

    def _read(self, indices: list[int]) -> Frames:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Clip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (f"{type(self).__name__}({i.source!r}, {i.width}x{i.height}, {i.num_frames} frames, "
                f"{i.fps:.3g} fps, {i.pix_fmt})")


MIN_FPS, MAX_FPS = 1e-3, 1e6  # one frame per 1000 s .. a million frames per second


def checked_fps(fps: Any) -> float:
    """``fps`` as a float in ``[MIN_FPS, MAX_FPS]``; :class:`InvalidVideoInput` otherwise (so that every
    duration and timestamp derived from it is finite)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise InvalidVideoInput(f"fps must be a number of frames per second, got {fps!r} ({type(fps).__name__})")
    value = float(fps)
    if not (np.isfinite(value) and MIN_FPS <= value <= MAX_FPS):
        raise InvalidVideoInput(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g} frames per second, got {fps!r}")
    return value


class TensorClip(Clip):
    """A clip held in memory as :class:`RGBFrames` or :class:`YUV420Frames` (any device)."""

    def __init__(self, frames: Frames, fps: float | None = None, source: str = "<tensor>"):
        fps = DEFAULT_TENSOR_FPS if fps is None else checked_fps(fps)
        self.frames = frames
        h, w = frames.size
        if isinstance(frames, YUV420Frames):
            pix = "yuv420p" if frames.bit_depth == 8 else f"yuv420p{frames.bit_depth}le"  # FFmpeg's names
            depth = frames.bit_depth
        else:
            pix = "rgb24" if frames.data.dtype == torch.uint8 else f"rgb_{str(frames.data.dtype)[6:]}"
            depth = 8 if frames.data.dtype == torch.uint8 else 32
        t = frames.num_frames
        self._info = ClipInfo(width=w, height=h, fps=fps, num_frames=t, duration=t / fps, pix_fmt=pix,
                              bit_depth=depth, source=source)

    @property
    def info(self) -> ClipInfo:
        return self._info

    def _read(self, indices: list[int]) -> Frames:
        if indices == list(range(self.frames.num_frames)):
            return self.frames
        return self.frames.select(torch.tensor(indices, dtype=torch.long))


def iter_videos(videos: Any) -> Iterator[Any]:
    """Split a batch into single videos: a list/tuple, a ``(B, T, 3, H, W)`` tensor, or one video."""
    if isinstance(videos, torch.Tensor) and videos.ndim == 5:
        if videos.shape[0] == 0:
            raise InvalidVideoInput("the batch tensor is empty (B = 0); pass at least one clip")
        yield from videos.unbind(0)
        return
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise InvalidVideoInput("the batch is empty; pass at least one video")
        yield from videos
        return
    yield videos
