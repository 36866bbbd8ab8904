"""Clip-level pooling of segment outputs: freezes, worst-segment pooling, attribution.

Segments are scored independently by the head. Pooling decides what only the whole clip shows:

* **Holds: freezes and stutter.** A clip *moves* when at least a quarter of its frame steps
  change by ``FROZEN_MOTION`` or more and the median of those is at least ``MOVING_MOTION``. In a
  moving clip a step is *still* when its luma change is below ``FROZEN_MOTION`` and below
  ``FROZEN_SHARE`` of that median (a re-encoded repeated frame is not bit-identical), and a
  segment *holds* when it has ``HOLD_STEPS`` still steps in a row (the same picture three times).
  Inside four frames a hold has no motion to judge, so the head cannot see it; pooling does. A
  holding segment that is not black (black frames are their own distortion) scores at most
  ``1 + (1 - (1 - FREEZE_SCALE) * h) * (spatial_score - 1)``, ``h`` its share of still steps
  (a segment entirely inside a hold keeps ``FREEZE_SCALE`` of its spatial score above 1). In a
  clip that does not move (a still image, a tripod shot, a slide) nothing holds: its segments
  keep their spatial score, which is what the head gives for frames that do not change. Without
  per-step motion (``motion_steps``) a segment holds when its mean motion is still.
* **Freeze or stutter.** Both are a picture shown again; the head sees four frames and cannot
  tell them apart, the still steps can. Still steps are *stutter* (short holds that keep ending,
  a low frame rate) when at least ``STUTTER_MIXED`` segments, and more than ``STUTTER_MOVING`` of
  the segments with a still step, have both still and moving steps; otherwise they are a
  *freeze* (the picture stops, however long). Holds are named accordingly, and the head's
  probability of the other of the two classes is added to the one named.
* **No repeated picture, no freeze or stutter.** When no step of a clip is still, or none
  moves (a still image), the head's probabilities of these two classes go to the other classes
  (renormalised): shake or flicker is not named stutter, a photo is not named a freeze.
* **Worst-segment pooling with a slack.** With ``m`` the mean of the segment scores and ``w`` the
  mean of the worst ``ceil(WORST_SHARE * N)``, ``clip = m - WORST_WEIGHT * max(0, m - w -
  WORST_SLACK)``: a short defect (one black, frozen or blurred second in ten) lowers the clip
  score well below the mean, in the spirit of the percentile pooling of Moorthy and Bovik (2009),
  while the ordinary spread between the segments of a clean clip (a pan passing sky and
  foliage) costs nothing. A clip whose segments all score alike keeps that score.
* **Attribution.** The attribution probabilities are averaged with the pooling weights; when
  that names "none" while a segment scores at least ``DEFECT_DROP`` below the median segment,
  the dominant distortion is that worst segment's most likely distortion.

Everything is written with torch operations on the head's outputs, so it back-propagates (the
clip score of ``as_loss=True``) and is the same for the ONNX and the PyTorch runtimes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FROZEN_MOTION = 1e-3    # mean absolute luma change of a frame step (luma in [0, 1]): below, a step may be still;
                        # from it, a step moves
FROZEN_SHARE = 0.05     # ... still if it is also below this share of the median moving step
HOLD_STEPS = 2          # still steps in a row that make a segment hold (the same picture 3 times)
MOVING_MOTION = 2e-3    # median moving step from which a clip counts as moving
FREEZE_SCALE = 0.25     # a freeze keeps this share of its spatial score above 1
WORST_SHARE = 0.1       # the worst segments: this share of them, at least one
WORST_WEIGHT = 0.85     # how much of the worst segments' shortfall below the mean the clip score takes
WORST_SLACK = 0.1       # shortfall (1-5 scale) that costs nothing: the spread of clean content
STUTTER_MIXED = 2       # stutter needs at least this many segments with both still and moving steps ...
STUTTER_MOVING = 1 / 3  # ... and more than this share of the segments with a still step
DEFECT_DROP = 0.5       # a segment this far below the median names the dominant distortion


@dataclass
class PooledClip:
    """One clip's pooled outputs: ``score`` (0-dim tensor, keeps autograd), ``segment_scores``
    ``(N,)`` after the freeze rule, ``weights`` ``(N,)`` summing to 1, ``frozen`` ``(N,)`` bool,
    ``attribution`` ``(C,)`` probabilities, ``severity`` ``(C - 1,)``, ``dominant`` class index,
    ``segment_classes`` ``(N,)`` each segment's most likely class."""

    score: torch.Tensor
    segment_scores: torch.Tensor
    weights: torch.Tensor
    frozen: torch.Tensor
    attribution: torch.Tensor
    severity: torch.Tensor
    dominant: int
    segment_classes: torch.Tensor


@dataclass
class Holds:
    """What :func:`held_segments` finds: ``held`` ``(N,)`` bool, the segments of a moving clip that
    hold the same picture; ``share`` ``(N,)`` in [0, 1], their share of still steps; ``repeats``,
    whether any step of the clip is still (a picture shown again); ``stutter``, whether the
    still steps look like stutter (short holds that keep ending) rather than a freeze."""

    held: torch.Tensor
    share: torch.Tensor
    repeats: bool
    stutter: bool


def held_segments(motion: torch.Tensor, steps: torch.Tensor | None = None) -> Holds:
    """``(N,)`` mean motion per segment (and ``(N, K - 1)`` per-step motion) -> :class:`Holds`
    (module docstring)."""
    n = motion.numel()
    steps = motion[:, None] if steps is None or steps.shape[-1] < HOLD_STEPS else steps
    flat = steps.flatten()
    moving = flat[flat >= FROZEN_MOTION]
    limit = min(FROZEN_MOTION, float(FROZEN_SHARE * moving.median())) if moving.numel() else FROZEN_MOTION
    still = steps < limit
    some = still.any(1)
    mixed = int((some & ~still.all(1)).sum())
    stutter = mixed >= STUTTER_MIXED and mixed > STUTTER_MOVING * int(some.sum())
    repeats = bool(some.any()) and moving.numel() > 0
    if n < 2 or moving.numel() * 4 < flat.numel() or not bool(moving.median() >= MOVING_MOTION):
        # the clip does not move: nothing is held
        return Holds(torch.zeros(n, dtype=torch.bool, device=motion.device), motion.new_zeros(n), repeats, stutter)
    stillf = still.float()
    run = stillf.new_zeros(n)
    longest = stillf.new_zeros(n)
    for j in range(stillf.shape[-1]):
        run = (run + 1) * stillf[:, j]
        longest = torch.maximum(longest, run)
    return Holds(longest >= min(HOLD_STEPS, stillf.shape[-1]), stillf.mean(1), repeats, stutter)


def pooling_weights(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N,)`` segment scores -> ``((N,) weights summing to 1, offset)`` with ``clip = (weights *
    scores).sum() + offset`` the pooled score of the module docstring (no gradient through the
    choice of the worst segments or of the slack's side; ties broken by position)."""
    n = scores.numel()
    k = max(1, math.ceil(WORST_SHARE * n - 1e-9))
    s = scores.detach()
    worst = torch.argsort(s, stable=True)[:k]
    w = torch.full((n,), 1.0 / n, dtype=scores.dtype, device=scores.device)
    offset = scores.new_zeros(())
    if float(s.mean() - s[worst].mean()) > WORST_SLACK:
        w = w * (1.0 - WORST_WEIGHT)
        w[worst] += WORST_WEIGHT / k
        offset = offset + WORST_WEIGHT * WORST_SLACK
    return w, offset


def _without(probs: torch.Tensor, classes: tuple[int | None, ...]) -> torch.Tensor:
    """``probs`` ``(N, C)`` with the given classes' probability moved to the others (renormalised)."""
    drop = [c for c in classes if c is not None]
    if not drop:
        return probs
    probs = probs.clone()
    probs[:, drop] = 0.0
    return probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)


def _merged(probs: torch.Tensor, into: int, other: int) -> torch.Tensor:
    """``probs`` ``(N, C)`` with class ``other``'s probability added to class ``into``."""
    probs = probs.clone()
    probs[:, into] += probs[:, other]
    probs[:, other] = 0.0
    return probs


def pool(scores: torch.Tensor, attribution_logits: torch.Tensor, severity: torch.Tensor,
         motion: torch.Tensor | None = None, spatial_scores: torch.Tensor | None = None,
         freeze_class: int | None = None, black_class: int | None = None,
         motion_steps: torch.Tensor | None = None, stutter_class: int | None = None) -> PooledClip:
    """Pool one clip's ``N`` segments (see the module docstring). ``motion``, ``spatial_scores``
    and ``freeze_class`` (the attribution class of a freeze; heads of architecture 6) enable the
    freeze rule, ``motion_steps`` ``(N, K - 1)`` lets it see holds inside a segment; segments whose
    most likely class is ``black_class`` are never held; stutter holds are attributed to
    ``stutter_class``."""
    frozen = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    held_class = freeze_class
    probs = torch.softmax(attribution_logits.detach().float(), -1)
    if motion is not None and spatial_scores is not None and freeze_class is not None:
        steps = motion_steps.detach().float() if motion_steps is not None else None
        holds = held_segments(motion.detach().float(), steps)
        frozen, share = holds.held, holds.share
        if stutter_class is not None:
            if holds.stutter:
                held_class = stutter_class
            # the head cannot tell a freeze from stutter (it sees four frames); the still steps can
            probs = _merged(probs, held_class, stutter_class if held_class == freeze_class else freeze_class)
        if not holds.repeats:
            probs = _without(probs, (freeze_class, stutter_class))
        if black_class is not None:
            frozen &= attribution_logits.detach().argmax(-1) != black_class
        if bool(frozen.any()):
            keep = 1.0 - (1.0 - FREEZE_SCALE) * share.to(scores.dtype)
            scores = torch.where(frozen, torch.minimum(scores, 1.0 + keep * (spatial_scores - 1.0)), scores)
    w, offset = pooling_weights(scores)
    clip = (w * scores).sum() + offset
    if bool(frozen.any()):
        probs = probs.clone()
        probs[frozen] = 0.0
        probs[frozen, held_class] = 1.0
    wd = w.detach().float()
    attribution = (wd[:, None] * probs).sum(0)
    sev = (wd[:, None] * severity.detach().float()).sum(0)
    dominant = int(attribution.argmax())
    s = scores.detach().float()
    worst = int(s.argmin())
    if dominant == 0 and s.numel() > 1 and float(s.median() - s[worst]) >= DEFECT_DROP:
        dominant = 1 + int(probs[worst, 1:].argmax())
    return PooledClip(clip, scores, w, frozen, attribution, sev, dominant, probs.argmax(-1))


POOLED_CLASSES = ("freeze", "black", "stutter")  # the attribution classes pooling treats apart


def pooled_class_indices(attribution_classes: tuple[str, ...]) -> dict[str, int | None]:
    """Index of each of :data:`POOLED_CLASSES` among a head's attribution classes (None where the
    head has no such class)."""
    return {c: attribution_classes.index(c) if c in attribution_classes else None for c in POOLED_CLASSES}


def pool_outputs(out: dict[str, torch.Tensor], classes: dict[str, int | None]) -> PooledClip:
    """:func:`pool` one clip's head outputs (``out``: the head's dict for the clip's ``N`` segments;
    ``classes``: :func:`pooled_class_indices` of the head)."""
    return pool(out["score"], out["attribution"], out["severity"], out.get("motion"), out.get("spatial_score"),
                classes["freeze"], classes["black"], out.get("motion_steps"), classes["stutter"])
