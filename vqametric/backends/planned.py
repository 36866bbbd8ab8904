"""The stages every backend starts with: open the video, plan its sampling, decode the planned frames.

With a ``chunk_fn``, :func:`read_planned` also runs the next stage (preprocessing) chunk by
chunk (a segment, or single frames) *while the file is still decoding*: the decoder works in a
background thread (FFmpeg releases the GIL while it decodes) and each chunk is handed to
``chunk_fn`` in the calling thread as soon as its frames are complete. On a 2-core machine
decoding leaves part of a core idle, which the preprocessing of earlier frames fills. While the
decoder runs, PyTorch gets half its intra-op threads (at least one; ``torch.get_num_threads()`` is
restored afterwards): with all of them, preprocessing and decoding oversubscribe the cores and the
overlap gains nothing.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..io.clip import Clip, ClipInfo
from ..io.decode import FileClip
from ..io.sources import open_clip
from ..io.limits import check_frame_size
from ..io.frames import Frames
from ..sampling.plan import SamplingConfig, SamplingPlan, make_plan

ChunkFn = Callable[[SamplingPlan, int, Frames], Any]


@dataclass
class PlannedFrames:
    """Decoded frames of a plan. Short clips repeat planned frames, and each distinct frame is
    decoded once: ``frames`` holds the distinct ones (or, when streamed, the planned ones in plan
    order) and ``inverse`` (int64, one entry per
    ``plan.frame_indices``) maps plan positions to them; :meth:`planned` expands them.

    ``frames`` is ``None`` when :func:`read_planned` was asked not to keep the frames.
    ``chunk_outputs``: what ``chunk_fn`` returned for each chunk, in plan order (empty
    without one). ``timings``: ``open``, ``decode`` (wall time until the last frame was decoded)
    and, with a ``chunk_fn``, ``preprocess`` (wall time from then until every chunk was
    processed: only the part that did not overlap decoding).
    """

    info: ClipInfo
    plan: SamplingPlan
    frames: Frames | None
    inverse: torch.Tensor
    timings: dict[str, float]
    chunk_outputs: list[Any] = field(default_factory=list)

    def planned(self) -> Frames:
        """The frames in ``plan.frame_indices`` order (one per entry)."""
        if self.inverse.numel() == self.frames.num_frames and bool(
                (self.inverse == torch.arange(self.inverse.numel())).all()):
            return self.frames
        return self.frames.select(self.inverse)


def read_planned(video: Any, sampling: SamplingConfig, fps: float | None = None,
                 chunk_fn: ChunkFn | None = None, overlap: bool = True,
                 chunk: int | None = None, keep_frames: bool = True,
                 max_pixels: int | None = None) -> PlannedFrames:
    """Open ``video`` (any supported input), plan it with ``sampling`` and decode the planned frames.

    ``chunk_fn(plan, s, frames)``, if given, is called once per chunk ``s`` of ``chunk`` planned
    frames (default ``plan.frames_per_segment``: one call per segment; 1: one per planned frame,
    for stages that work frame by frame, which leaves the least work after the last frame is
    decoded), in plan order, in the calling thread, overlapping the decoding of later chunks for
    video files (``overlap=False``: after decoding everything, in the same order; the outputs are
    the same).

    ``keep_frames=False`` (with a ``chunk_fn``): video files are decoded frame by frame and each
    decoded frame is released once its chunks have run, so memory holds a few frames, not the plan
    (``PlannedFrames.frames`` is then ``None``); the decoder runs at most ``DECODE_LEAD`` frames
    ahead of ``chunk_fn``. ``max_pixels``: refuse frames larger than this (default
    :data:`~vqametric.io.limits.DEFAULT_MAX_PIXELS`) before decoding any picture.
    """
    t0 = time.perf_counter()
    clip: Clip = open_clip(video, fps=fps)
    owns = clip is not video
    try:
        check_frame_size(clip, max_pixels)
        info = clip.info
        t1 = time.perf_counter()
        plan = make_plan(info.num_frames, info.height, info.width, sampling, fps=info.fps,
                         timestamps=info.timestamps, duration=info.duration)
        distinct, inverse = np.unique(np.asarray(plan.frame_indices), return_inverse=True)
        distinct, inverse = distinct.tolist(), inverse.reshape(-1)
        chunk = chunk or plan.frames_per_segment
        if plan.frames_per_segment % chunk:
            raise ValueError(f"chunk={chunk} must divide the {plan.frames_per_segment} frames of a segment")
        outputs: list[Any] = []
        keep = keep_frames or chunk_fn is None
        if chunk_fn is not None and isinstance(clip, FileClip) and (overlap or not keep):
            frames, outputs, t2 = _decode_streaming(clip, plan, chunk_fn, chunk, keep, overlap)
            inverse = np.arange(len(plan.frame_indices))  # streamed frames come in plan order
        else:
            frames = clip.read(distinct)
            t2 = time.perf_counter()
            if chunk_fn is not None:
                outputs = [chunk_fn(plan, s, frames.select(_chunk_slots(inverse, chunk, s)))
                           for s in range(len(inverse) // chunk)]
        t3 = time.perf_counter()
    finally:
        if owns:
            clip.close()
    timings = {"open": t1 - t0, "decode": t2 - t1}
    if chunk_fn is not None:
        timings["preprocess"] = t3 - t2
    return PlannedFrames(info, plan, frames, torch.from_numpy(inverse), timings, outputs)


def _chunk_slots(inverse: np.ndarray, chunk: int, s: int) -> torch.Tensor:
    """Positions, among the distinct decoded frames, of chunk ``s``'s planned frames."""
    return torch.from_numpy(np.ascontiguousarray(inverse[s * chunk:(s + 1) * chunk]))


class _Cancelled(Exception):
    """Raised inside the decoding thread to stop it after the consumer failed."""


DECODE_LEAD = 4  # frames the decoding thread may hand over before the consumer has taken them


def _decode_streaming(clip: FileClip, plan: SamplingPlan, chunk_fn: ChunkFn, chunk: int, keep: bool,
                      threaded: bool) -> tuple[Frames | None, list[Any], float]:
    """Decode the plan's frames (in a background thread when ``threaded``) and run ``chunk_fn``
    here on each chunk as soon as its frames are in. Returns ``(frames in plan order, or None
    without ``keep``; outputs in chunk order; time decoding ended)``. A frame the plan repeats is
    decoded once."""
    indices = list(plan.frame_indices)
    n_chunks = len(indices) // chunk
    needs = [set(indices[s * chunk:(s + 1) * chunk]) for s in range(n_chunks)]
    outputs: dict[int, Any] = {}
    done: set[int] = set()

    def consume(i: int, take: Callable[[list[int]], Frames], before_chunk: Callable[[], None] | None = None) -> None:
        """Frame ``i`` is in: run every chunk whose frames are now all decoded."""
        done.add(i)
        for s in range(n_chunks):
            if s not in outputs and needs[s] <= done:
                if before_chunk is not None:
                    before_chunk()
                outputs[s] = chunk_fn(plan, s, take(list(range(s * chunk, (s + 1) * chunk))))
    if not threaded:
        frames = clip.read_streaming(indices, consume, keep)
        return frames, [outputs[s] for s in range(n_chunks)], time.perf_counter()
    events: queue.Queue = queue.Queue(maxsize=DECODE_LEAD)
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def hand_over(item: Any) -> None:
        while True:  # bounded lead; gives up once the consumer has stopped
            if cancel.is_set():
                raise _Cancelled()
            try:
                events.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def on_frame(i: int, take: Callable[[list[int]], Frames]) -> None:
        hand_over((i, take))

    def decode() -> None:
        try:
            box["frames"] = clip.read_streaming(indices, on_frame, keep)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            box["error"] = e
        finally:
            box["end"] = time.perf_counter()
            try:
                hand_over(None)
            except _Cancelled:
                pass

    def all_threads_once_decoded() -> None:
        if "end" in box:
            torch.set_num_threads(threads)

    worker = threading.Thread(target=decode, name="vqametric-decode", daemon=True)
    threads = torch.get_num_threads()
    worker.start()
    try:
        # the decoder keeps about one core busy: while it runs, preprocessing gets half the threads
        # (all of them oversubscribe the cores and slow decoding down more than they gain)
        torch.set_num_threads(max(1, threads // 2))
        while True:
            item = events.get()
            if item is None:
                break
            consume(*item, all_threads_once_decoded)
    except BaseException:
        cancel.set()
        raise
    finally:
        torch.set_num_threads(threads)
        worker.join()
    if "error" in box:
        raise box["error"]
    # a complete read reported every frame, so every chunk has run
    return box["frames"], [outputs[s] for s in range(n_chunks)], box["end"]
