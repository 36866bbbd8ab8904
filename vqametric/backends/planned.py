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

from ..io.clip import Clip, ClipInfo, open_clip
from ..io.decode import FileClip
from ..io.frames import Frames
from ..sampling.plan import SamplingConfig, SamplingPlan, make_plan

ChunkFn = Callable[[SamplingPlan, int, Frames], Any]


@dataclass
class PlannedFrames:
    """Decoded frames of a plan. Short clips repeat planned frames, so each distinct frame is
    decoded once: ``frames`` holds the distinct ones and ``inverse`` (int64, one entry per
    ``plan.frame_indices``) maps plan positions to them; :meth:`planned` expands them.

    ``chunk_outputs``: what ``chunk_fn`` returned for each chunk, in plan order (empty
    without one). ``timings``: ``open``, ``decode`` (wall time until the last frame was decoded)
    and, with a ``chunk_fn``, ``preprocess`` (wall time from then until every chunk was
    processed: only the part that did not overlap decoding).
    """

    info: ClipInfo
    plan: SamplingPlan
    frames: Frames
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
                 chunk: int | None = None) -> PlannedFrames:
    """Open ``video`` (any supported input), plan it with ``sampling`` and decode the planned frames.

    ``chunk_fn(plan, s, frames)``, if given, is called once per chunk ``s`` of ``chunk`` planned
    frames (default ``plan.frames_per_segment``: one call per segment; 1: one per planned frame,
    for stages that work frame by frame, which leaves the least work after the last frame is
    decoded), in plan order, in the calling thread, overlapping the decoding of later chunks for
    video files (``overlap=False``: after decoding everything, in the same order; the outputs are
    the same).
    """
    t0 = time.perf_counter()
    clip: Clip = open_clip(video, fps=fps)
    owns = clip is not video
    try:
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
        if chunk_fn is not None and overlap and isinstance(clip, FileClip):
            frames, outputs, t2 = _decode_overlapped(clip, plan, distinct, inverse, chunk_fn, chunk)
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


def _decode_overlapped(clip: FileClip, plan: SamplingPlan, distinct: list[int], inverse: np.ndarray,
                       chunk_fn: ChunkFn, chunk: int) -> tuple[Frames, list[Any], float]:
    """Decode ``distinct`` in a background thread; run ``chunk_fn`` here on each chunk as soon as
    its frames are in. Returns ``(frames, outputs in chunk order, time decoding ended)``."""
    n_chunks = len(inverse) // chunk
    position = {f: j for j, f in enumerate(distinct)}
    needs = [set(_chunk_slots(inverse, chunk, s).tolist()) for s in range(n_chunks)]
    events: queue.SimpleQueue = queue.SimpleQueue()
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def on_frame(i: int, take: Callable[[list[int]], Frames]) -> None:
        if cancel.is_set():
            raise _Cancelled()
        events.put((i, take))

    def decode() -> None:
        try:
            box["frames"] = clip.read_streaming(distinct, on_frame)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            box["error"] = e
        finally:
            box["end"] = time.perf_counter()
            events.put(None)

    worker = threading.Thread(target=decode, name="vqametric-decode", daemon=True)
    outputs: dict[int, Any] = {}
    done: set[int] = set()
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
            i, take = item
            done.add(position[i])
            for s in range(n_chunks):
                if s not in outputs and needs[s] <= done:
                    if "end" in box:
                        torch.set_num_threads(threads)
                    outputs[s] = chunk_fn(plan, s, take(_chunk_slots(inverse, chunk, s).tolist()))
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
