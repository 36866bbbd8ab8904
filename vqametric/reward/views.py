"""Stochastic views for rewards: which frames and which fragment boxes one call looks at.

The metric's plan is deterministic: the same ``frames_per_segment`` frames at each segment's
midpoint and the same fragment boxes on every call, so a generator trained against it would get
gradient on those pixels only. A :class:`ViewSchedule` varies both from call to call, seeded:

* **frames**: each segment ``[a, b)`` is covered by windows of ``K = frames_per_segment``
  consecutive frames (:func:`segment_windows`: one at ``a``, one every ``K`` frames from a random
  phase, one ending at ``b``); calls take them one after another in a seeded random order, with a
  new phase and order each cycle. Every frame is looked at within one cycle, at most
  ``ceil(segment length / K) + 1`` calls (a 32-frame clip at 30 fps: 4 segments of 8 frames, at
  most 3 calls), and window boundaries move, so a change that only holds inside fixed windows
  (flicker at their edges) is seen;
* **fragments**: the boxes are drawn again with a seed of the call, so over calls every pixel lies
  in some fragment.

Everything is a pure function of ``(seed, call)``: a run restarted with the same seed sees the
same views.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..sampling.plan import SamplingPlan, fragment_plan


def segment_windows(start: int, stop: int, k: int, num_frames: int, phase: int = 0) -> list[int]:
    """Start frames of windows of ``k`` frames that together cover segment ``[start, stop)`` of a
    clip of ``num_frames`` frames: one at ``start``, one every ``k`` frames from ``start + phase``
    (``0 <= phase < k``), one ending at ``stop``. A segment of at most ``k`` frames has one
    window, shifted to fit the clip."""
    if stop - start <= k:
        return [max(0, min(start, num_frames - k))]
    inner = range(start + phase, stop - k + 1, k)
    return sorted({start, stop - k, *inner})


class ViewSchedule:
    """Seeded per-call frame windows and fragment boxes (module docstring). ``seed``: any int."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._cycles: dict[tuple[int, ...], tuple[int, int]] = {}  # segment -> (its cycle, the cycle's first call)

    def _cycle(self, i: int, start: int, stop: int, k: int, n: int, call: int) -> tuple[list[int], int]:
        """Segment ``i``'s windows in the order of the cycle that holds ``call``, and ``call``'s
        position in it. Cycles differ in length (their phase sets the number of windows), so they
        are walked from the last one asked about (calls usually come in order)."""
        key = (i, start, stop, k, n)
        cycle, first = self._cycles.get(key, (0, 0))
        if call < first:
            cycle, first = 0, 0
        while True:
            rng = np.random.default_rng([self.seed, cycle, i])
            starts = segment_windows(start, stop, k, n, int(rng.integers(k)))
            if call < first + len(starts):
                self._cycles[key] = (cycle, first)
                return [starts[j] for j in rng.permutation(len(starts))], call - first
            cycle, first = cycle + 1, first + len(starts)

    def rng(self, call: int, stream: int) -> np.random.Generator:
        """The generator of call ``call`` for one use (``stream``), independent of the others."""
        return np.random.default_rng([self.seed, int(call), int(stream)])

    def frame_indices(self, plan: SamplingPlan, num_frames: int, call: int) -> tuple[int, ...]:
        """``plan``'s frame indices with every segment's window chosen for call ``call``
        (segment-major, ``frames_per_segment`` each, as ``plan.frame_indices``)."""
        k = plan.frames_per_segment
        out: list[int] = []
        for i, seg in enumerate(plan.segments):
            starts, pos = self._cycle(i, seg.start_frame, seg.end_frame, k, num_frames, call)
            out += [min(starts[pos] + j, num_frames - 1) for j in range(k)]
        return tuple(out)

    def plan(self, plan: SamplingPlan, num_frames: int, call: int) -> SamplingPlan:
        """``plan`` with call ``call``'s frames and fragment boxes."""
        frag = plan.fragments
        if frag is not None:
            h, w = plan.source_size
            frag = fragment_plan(h, w, frag.grid, frag.patch, int(self.rng(call, 0).integers(2 ** 31)))
        return replace(plan, frame_indices=self.frame_indices(plan, num_frames, call), fragments=frag)
