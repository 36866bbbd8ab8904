"""The stages every backend starts with: open the video, plan its sampling, decode the planned frames."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..io.clip import Clip, ClipInfo, open_clip
from ..io.frames import Frames
from ..sampling.plan import SamplingConfig, SamplingPlan, make_plan


@dataclass
class PlannedFrames:
    """Decoded frames of a plan. Short clips repeat planned frames, so each distinct frame is
    decoded once: ``frames`` holds the distinct ones and ``inverse`` (int64, one entry per
    ``plan.frame_indices``) maps plan positions to them; :meth:`planned` expands them."""

    info: ClipInfo
    plan: SamplingPlan
    frames: Frames
    inverse: torch.Tensor
    timings: dict[str, float]

    def planned(self) -> Frames:
        """The frames in ``plan.frame_indices`` order (one per entry)."""
        if self.inverse.numel() == self.frames.num_frames and bool(
                (self.inverse == torch.arange(self.inverse.numel())).all()):
            return self.frames
        return self.frames.select(self.inverse)


def read_planned(video: Any, sampling: SamplingConfig, fps: float | None = None) -> PlannedFrames:
    """Open ``video`` (any supported input), plan it with ``sampling`` and decode the planned frames."""
    t0 = time.perf_counter()
    clip: Clip = open_clip(video, fps=fps)
    owns = clip is not video
    try:
        info = clip.info
        t1 = time.perf_counter()
        plan = make_plan(info.num_frames, info.height, info.width, sampling, fps=info.fps,
                         timestamps=info.timestamps, duration=info.duration)
        distinct, inverse = np.unique(np.asarray(plan.frame_indices), return_inverse=True)
        frames = clip.read(distinct.tolist())
        t2 = time.perf_counter()
    finally:
        if owns:
            clip.close()
    return PlannedFrames(info, plan, frames, torch.from_numpy(inverse.reshape(-1)),
                         {"open": t1 - t0, "decode": t2 - t1})
