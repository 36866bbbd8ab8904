"""Sampling plans: pure, seeded, deterministic index math. No pixels are touched here.

A :class:`SamplingPlan` says which frames to decode and which boxes of them become model input:

* temporal: ``num_segments`` equal segments with ``frames_per_segment`` consecutive frames taken
  at each segment's midpoint (``segment_midpoints``), or frames at a fixed rate (``fps``);
* spatial, FAST-VQA-style fragments: a ``grid x grid`` lattice over the frame, one
  ``patch x patch`` native-resolution patch per cell at a seeded random offset, the same positions
  for every frame of the clip, spliced into one ``(grid*patch)^2`` image. Frames whose short side
  is below ``grid*patch`` are upscaled (bilinear) first so that every cell holds a full patch (the
  long side of a very elongated frame is stretched less, see :func:`fragment_plan`);
* spatial, a global view: the whole frame resized to ``global_size x global_size``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import SamplingError

MAX_UPSCALED_ASPECT = 8  # bound on the upscaled long side, in fragment sizes (see fragment_plan)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SamplingConfig:
    """How a model wants its clips sampled. Stored in model cards as plain data.

    ``frame_rule``: ``"segment_midpoints"`` (``num_segments`` x ``frames_per_segment`` frames; with
    ``segment_seconds > 0`` the number of segments grows with the clip's duration: one segment per
    ``segment_seconds``, at least ``num_segments`` and at most ``max_segments``) or
    ``"fps"`` (frames every ``1/fps`` seconds, at most ``max_frames``, ``frames_per_segment`` each).
    ``fragment_grid``/``fragment_patch``: 0 disables fragments. ``global_size``: 0 disables the
    global view. ``interpolation``: ``"bilinear"`` (antialiased when downscaling) or ``"bicubic"``.
    """

    frame_rule: str = "segment_midpoints"
    num_segments: int = 8
    frames_per_segment: int = 1
    fps: float = 1.0
    max_frames: int = 64
    fragment_grid: int = 7
    fragment_patch: int = 32
    global_size: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    seed: int = 0
    segment_seconds: float = 0.0
    max_segments: int = 16

    def __post_init__(self) -> None:
        if self.frame_rule not in ("segment_midpoints", "fps"):
            raise SamplingError(f"unknown frame_rule {self.frame_rule!r}; use 'segment_midpoints' or 'fps'")
        if self.num_segments < 1 or self.frames_per_segment < 1 or self.max_frames < 1:
            raise SamplingError("num_segments, frames_per_segment and max_frames must be at least 1")
        if self.frame_rule == "fps" and not (np.isfinite(self.fps) and self.fps > 0):
            raise SamplingError(f"fps must be positive for frame_rule='fps', got {self.fps}")
        if (self.fragment_grid > 0) != (self.fragment_patch > 0):
            raise SamplingError("set both fragment_grid and fragment_patch, or both to 0")
        if self.fragment_grid <= 0 and self.global_size <= 0:
            raise SamplingError("enable fragments or a global view; a plan needs at least one spatial view")
        if not (np.isfinite(self.segment_seconds) and self.segment_seconds >= 0):
            raise SamplingError(f"segment_seconds must be 0 (a fixed num_segments) or positive, got {self.segment_seconds}")
        if self.max_segments < self.num_segments:
            raise SamplingError(f"max_segments ({self.max_segments}) must be at least num_segments ({self.num_segments})")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise SamplingError(f"interpolation must be 'bilinear' or 'bicubic', got {self.interpolation!r}")
        if min(self.std) <= 0:
            raise SamplingError("std must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SamplingConfig":
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise SamplingError(f"unknown sampling option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class Segment:
    """One temporal segment: source frames ``[start_frame, end_frame)`` and their time span."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float


@dataclass(frozen=True)
class FragmentPlan:
    """Fragment boxes on a frame of ``source_size`` (after an optional upscale to ``resize_to``).

    ``tops``/``lefts``: ``grid*grid`` patch corners in row-major cell order, in the coordinates of
    the (possibly upscaled) frame; patch ``k`` lands at output rows ``(k // grid) * patch`` and
    columns ``(k % grid) * patch``.
    """

    grid: int
    patch: int
    resize_to: tuple[int, int] | None
    tops: tuple[int, ...]
    lefts: tuple[int, ...]

    @property
    def out_size(self) -> int:
        return self.grid * self.patch


@dataclass(frozen=True)
class SamplingPlan:
    """Frames to decode and the views to build from them. ``frame_indices`` has
    ``len(segments) * frames_per_segment`` entries, segment-major."""

    frame_indices: tuple[int, ...]
    frames_per_segment: int
    segments: tuple[Segment, ...]
    source_size: tuple[int, int]
    fragments: FragmentPlan | None
    global_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    seed: int = 0
    config: SamplingConfig = field(default_factory=SamplingConfig, repr=False)

    @property
    def num_segments(self) -> int:
        return len(self.segments)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for results and reports."""
        d = {"frame_indices": list(self.frame_indices), "frames_per_segment": self.frames_per_segment,
             "source_size": list(self.source_size), "global_size": self.global_size, "seed": self.seed,
             "frame_rule": self.config.frame_rule}
        if self.fragments is not None:
            d["fragments"] = {"grid": self.fragments.grid, "patch": self.fragments.patch,
                              "upscaled_to": list(self.fragments.resize_to) if self.fragments.resize_to else None}
        return d


def segment_midpoints(num_frames: int, num_segments: int) -> list[int]:
    """Middle frame of each of ``num_segments`` equal segments of frames ``0..num_frames-1``.

    Matches the VQAThinker release's indexing: with ``s = (num_frames - 1) / num_segments``,
    frame ``i`` is ``int(s / 2 + round(s * i))`` (round half to even). Repeats frames when the clip
    has fewer frames than segments.
    """
    if num_frames < 1:
        raise SamplingError("cannot sample a clip with zero frames")
    if num_segments < 1:
        raise SamplingError("num_segments must be at least 1")
    s = (num_frames - 1) / num_segments
    return [min(num_frames - 1, int(s / 2 + float(np.round(s * i)))) for i in range(num_segments)]


def segment_count(duration: float, config: SamplingConfig) -> int:
    """Segments of a clip of ``duration`` seconds under the ``segment_midpoints`` rule:
    ``num_segments``, or with ``segment_seconds > 0`` ``ceil(duration / segment_seconds)`` clamped to
    ``[num_segments, max_segments]`` (a 10 s clip at 1 s per segment: 10; a still image: the minimum)."""
    if config.segment_seconds <= 0:
        return config.num_segments
    want = int(np.ceil(duration / config.segment_seconds - 1e-9))
    return int(min(max(want, config.num_segments), config.max_segments))


def frames_at_fps(timestamps: Sequence[float], fps: float, max_frames: int,
                  duration: float | None = None) -> list[int]:
    """Frames nearest to times ``0, 1/fps, 2/fps, ...`` before the clip ends (at most ``max_frames``,
    spread evenly).

    ``timestamps``: presentation time of every frame in seconds, ascending (variable frame rate
    clips are handled exactly). ``duration``: the clip's length; default the last timestamp plus the
    median frame interval.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size == 0:
        raise SamplingError("cannot sample a clip with zero frames")
    ts = ts - ts[0]
    if duration is None or not duration > 0:
        duration = float(ts[-1] + (np.median(np.diff(ts)) if ts.size > 1 else 1.0 / fps))
    times = np.arange(0.0, duration - 1e-9, 1.0 / fps)
    if times.size > max_frames:
        times = times[np.round(np.linspace(0, times.size - 1, max_frames)).astype(np.int64)]
    pos = np.clip(np.searchsorted(ts, times), 1, ts.size - 1) if ts.size > 1 else np.zeros(times.size, np.int64)
    if ts.size > 1:
        left_closer = (times - ts[pos - 1]) <= (ts[pos] - times)
        pos = np.where(left_closer, pos - 1, pos)
    return [int(p) for p in pos]


def fragment_plan(height: int, width: int, grid: int, patch: int, seed: int) -> FragmentPlan:
    """Seeded fragment boxes for a ``height x width`` frame (see module docstring)."""
    if height < 1 or width < 1:
        raise SamplingError(f"cannot take fragments from an empty {height}x{width} frame")
    need = grid * patch
    resize_to = None
    h, w = height, width
    if min(h, w) < need:
        scale = need / min(h, w)
        # extreme aspect ratios: the long side grows to at most its native length or
        # MAX_UPSCALED_ASPECT x the fragment size (a 16x10000 frame becomes 224x10000, not 224x140000)
        cap = max(h, w, need * MAX_UPSCALED_ASPECT)
        h, w = min(cap, max(need, int(round(h * scale)))), min(cap, max(need, int(round(w * scale))))
        resize_to = (h, w)
    rng = np.random.default_rng(seed)
    tops, lefts = [], []
    for gy in range(grid):
        y0, y1 = gy * h // grid, (gy + 1) * h // grid
        for gx in range(grid):
            x0, x1 = gx * w // grid, (gx + 1) * w // grid
            tops.append(y0 + int(rng.integers(0, y1 - y0 - patch + 1)))
            lefts.append(x0 + int(rng.integers(0, x1 - x0 - patch + 1)))
    return FragmentPlan(grid, patch, resize_to, tuple(tops), tuple(lefts))


def make_plan(num_frames: int, height: int, width: int, config: SamplingConfig, *, fps: float = 30.0,
              timestamps: Sequence[float] | None = None, duration: float | None = None) -> SamplingPlan:
    """Build the plan for a clip of ``num_frames`` frames of ``height x width`` pixels.

    ``timestamps`` (seconds per frame) and ``duration`` (seconds) come from
    :class:`~vqametric.io.ClipInfo` for decoded files; without them frames are assumed evenly spaced
    at ``fps``.
    """
    if num_frames < 1:
        raise SamplingError("cannot sample a clip with zero frames")
    if height < 1 or width < 1:
        raise SamplingError(f"cannot sample frames of size {height}x{width}")
    n, k = num_frames, config.frames_per_segment
    ts = list(timestamps) if timestamps is not None and len(timestamps) == n else [i / fps for i in range(n)]
    ts = [t - ts[0] for t in ts]
    if duration is None or not duration > ts[-1]:
        duration = ts[-1] + (float(np.median(np.diff(ts))) if n > 1 else 1.0 / fps)
    if config.frame_rule == "segment_midpoints":
        anchors = segment_midpoints(n, segment_count(duration, config))
    else:
        anchors = frames_at_fps(ts, config.fps, config.max_frames, duration)
    # each anchor starts a run of k consecutive frames, shifted back to fit inside the clip
    starts = [max(0, min(a, n - k)) for a in anchors]
    indices = [min(s + j, n - 1) for s in starts for j in range(k)]
    m = len(anchors)
    segments = []
    for i in range(m):
        a, b = i * n // m, max(i * n // m + 1, (i + 1) * n // m)
        segments.append(Segment(a, b, float(ts[a]), float(ts[b] if b < n else duration)))
    frag = None
    if config.fragment_grid > 0:
        frag = fragment_plan(height, width, config.fragment_grid, config.fragment_patch, config.seed)
    return SamplingPlan(tuple(indices), k, tuple(segments), (height, width), frag, config.global_size,
                        config.interpolation, tuple(config.mean), tuple(config.std), config.seed, config)
