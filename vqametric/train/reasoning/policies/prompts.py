"""Training prompts: a clip decoded, planned and prepared exactly as inference does, with its
frames kept for the temporal perturbations of GRPO's temporal reward."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ....backends.lmm.base import Adapter, PreparedClip
from ....io.frames import Frames, RGBFrames, YUV420Frames
from ....io.sources import open_clip
from ....sampling import make_plan
from ...fast.distortions import BLACK
from ..grpo import perturb_frame_indices


@dataclass
class VideoPrompt:
    """One clip and its question, ready for the model.

    ``clip``: the family's visual tensors (``Adapter.prepare``); ``text``: the full chat prompt;
    ``frames``: the decoded frames the clip was made from, one per entry of ``frame_indices``
    (source frame numbers, ``-1`` for a black frame); ``plan`` / ``info``: the sampling plan and
    the clip's metadata (timing). ``question`` is kept to re-prompt a perturbed copy."""
    clip: PreparedClip
    text: str
    question: str
    frames: Frames | None = None
    frame_indices: tuple[int, ...] = ()
    plan: Any = None
    info: Any = None
    source: str = ""


def prepare_prompt(adapter: Adapter, video: Any, question: str, fps: float | None = None) -> VideoPrompt:
    """Open ``video`` (a path, bytes, a tensor ... anything :func:`vqametric.io.open_clip` takes),
    sample and decode it with the adapter's sampling config and build its prompt, the same steps
    as :meth:`LMMScorer.prepare <vqametric.backends.lmm.scorer.LMMScorer.prepare>`."""
    clip = open_clip(video, fps=fps)
    owns = clip is not video
    try:
        info = clip.info
        plan = make_plan(info.num_frames, info.height, info.width, adapter.sampling, fps=info.fps,
                         timestamps=info.timestamps)
        frames = clip.read(plan.frame_indices)
    finally:
        if owns:
            clip.close()
    prepared = adapter.prepare(frames, plan, info)
    return VideoPrompt(prepared, adapter.prompt(prepared, question), question, frames, tuple(plan.frame_indices),
                       plan, info, str(getattr(info, "source", "")))


def _black_level(frames: YUV420Frames) -> tuple[int, int]:
    shift = int(frames.bit_depth) - 8
    return (0 if frames.full_range else 16 << shift), 128 << shift


def select_frames(frames: Frames, positions: Sequence[int]) -> Frames:
    """The frames at ``positions`` (indices into ``frames``), a black frame where a position is
    ``-1``: RGB zeros, or YUV black (luma at the black level, neutral chroma)."""
    pos = torch.as_tensor(list(positions), dtype=torch.long)
    if pos.numel() == 0:
        raise ValueError("no frames selected")
    black = pos == BLACK
    idx = pos.clamp_min(0)
    if isinstance(frames, RGBFrames):
        out = frames.data.index_select(0, idx.to(frames.data.device))
        if black.any():
            out = out.clone()
            out[black.to(out.device)] = 0
        return RGBFrames(out)
    if isinstance(frames, YUV420Frames):
        sel = frames.select(idx)
        if black.any():
            luma, chroma = _black_level(frames)
            b = black.to(sel.y.device)
            y, u, v = sel.y.clone(), sel.u.clone(), sel.v.clone()
            y[b], u[b], v[b] = luma, chroma, chroma
            sel = YUV420Frames(y, u, v, sel.bit_depth, sel.matrix, sel.full_range)
        return sel
    raise TypeError(f"expected RGBFrames or YUV420Frames, got {type(frames).__name__}")


def perturb_prompt(adapter: Adapter, prompt: VideoPrompt, rng: np.random.Generator,
                   kind: str | None = None) -> VideoPrompt:
    """A temporally perturbed copy of ``prompt`` (VQAThinker's temporal reward).

    The new frame indices are ``perturb_frame_indices(prompt.frame_indices, rng, kind)`` (one of
    the six perturbations, drawn per call when ``kind`` is None; ``-1`` is a black frame); the clip
    is prepared again from the kept frames with the original sampling plan, so its timing, token
    layout and prompt length are the original's."""
    if prompt.frames is None or prompt.plan is None or not prompt.frame_indices:
        raise ValueError("the prompt has no decoded frames to perturb; build it with prepare_prompt()")
    base = [int(i) for i in prompt.frame_indices]
    new = [int(i) for i in perturb_frame_indices(np.asarray(base, dtype=np.int64), rng, kind)]
    first: dict[int, int] = {}
    for pos, f in enumerate(base):
        first.setdefault(f, pos)
    frames = select_frames(prompt.frames, [BLACK if f == BLACK else first[f] for f in new])
    prepared = adapter.prepare(frames, prompt.plan, prompt.info)
    return VideoPrompt(prepared, adapter.prompt(prepared, prompt.question), prompt.question, frames, tuple(new),
                       prompt.plan, prompt.info, prompt.source)
