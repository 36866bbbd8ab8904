"""Clip-level pooling of segment outputs: freezes, worst-segment pooling, attribution.

Segments are scored independently by the head. Pooling decides what only the whole clip shows:

* **Holds: freezes and heavy stutter.** A clip *moves* when at least a quarter of its frame steps
  change by ``FROZEN_MOTION`` or more and the median of those is at least ``MOVING_MOTION``. In a
  moving clip a step is *still* when its luma change is below ``FROZEN_MOTION`` and below
  ``FROZEN_SHARE`` of that median (a re-encoded repeated frame is not bit-identical), and a
  segment *holds* when it has ``HOLD_STEPS`` still steps in a row (the same picture three times).
  Inside four frames a hold has no motion to judge, so the head cannot see it; pooling does. A
  holding segment that is not black (black frames are their own distortion) scores at most
  ``1 + (1 - (1 - FREEZE_SCALE) * h) * (spatial_score - 1)``, ``h`` its share of still steps
  (a segment entirely inside a hold keeps ``FREEZE_SCALE`` of its spatial score above 1). When at
  most half of the segments hold, the holds are *freezes* (a stop in moving content); when more
  do, the clip *stutters* (frames held again and again) and they are attributed to stutter. In a
  clip that does not move (a still image, a tripod shot, a slide) nothing holds: its segments
  keep their spatial score, which is what the head gives for frames that do not change. Without
  per-step motion (``motion_steps``) a segment holds when its mean motion is still.
* **Worst-segment pooling.** ``clip = (1 - WORST_WEIGHT) * mean + WORST_WEIGHT * mean of the
  worst ceil(WORST_SHARE * N) segments``: a short defect (one black, frozen or blurred second in
  ten) lowers the clip score instead of vanishing in the mean, in the spirit of the percentile
  pooling of Moorthy and Bovik (2009). A clip whose segments all score alike keeps that score.
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
FREEZE_SCALE = 0.4      # a freeze keeps this share of its spatial score above 1
WORST_SHARE = 0.1       # the worst segments: this share of them, at least one
WORST_WEIGHT = 0.5      # weight of the worst segments' mean in the clip score
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


def held_segments(motion: torch.Tensor, steps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(N,)`` mean motion per segment (and ``(N, K - 1)`` per-step motion) -> ``(holds (N,) bool,
    still share (N,) in [0, 1], stutter)``: the segments of a moving clip that hold the same
    picture, the share of still steps in each, and whether holds are everywhere (module docstring)."""
    n = motion.numel()
    steps = motion[:, None] if steps is None or steps.shape[-1] < HOLD_STEPS else steps
    none = torch.zeros(n, dtype=torch.bool, device=motion.device)
    flat = steps.flatten()
    moving = flat[flat >= FROZEN_MOTION]
    if n < 2 or moving.numel() * 4 < flat.numel() or not bool(moving.median() >= MOVING_MOTION):
        return none, motion.new_zeros(n), False          # the clip does not move: nothing is held
    limit = min(FROZEN_MOTION, float(FROZEN_SHARE * moving.median()))
    still = (steps < limit).float()
    if steps.shape[-1] < HOLD_STEPS:
        return still[:, 0] > 0, still[:, 0], False
    run = still.new_zeros(n)
    longest = still.new_zeros(n)
    for j in range(still.shape[-1]):
        run = (run + 1) * still[:, j]
        longest = torch.maximum(longest, run)
    holds = longest >= HOLD_STEPS
    return holds, still.mean(1), int(holds.sum()) * 2 > n


def pooling_weights(scores: torch.Tensor) -> torch.Tensor:
    """``(N,)`` segment scores -> ``(N,)`` weights of :func:`pool` (no gradient through the
    choice of the worst segments; ties broken by position)."""
    n = scores.numel()
    k = max(1, math.ceil(WORST_SHARE * n - 1e-9))
    worst = torch.argsort(scores.detach(), stable=True)[:k]
    w = torch.full((n,), (1.0 - WORST_WEIGHT) / n, dtype=scores.dtype, device=scores.device)
    w[worst] += WORST_WEIGHT / k
    return w


def pool(scores: torch.Tensor, attribution_logits: torch.Tensor, severity: torch.Tensor,
         motion: torch.Tensor | None = None, spatial_scores: torch.Tensor | None = None,
         freeze_class: int | None = None, black_class: int | None = None,
         motion_steps: torch.Tensor | None = None, stutter_class: int | None = None) -> PooledClip:
    """Pool one clip's ``N`` segments (see the module docstring). ``motion``, ``spatial_scores``
    and ``freeze_class`` (the attribution class of a freeze; heads of architecture 6) enable the
    freeze rule, ``motion_steps`` ``(N, K - 1)`` lets it see holds inside a segment; segments whose
    most likely class is ``black_class`` are never held; when holds are everywhere they are
    attributed to ``stutter_class``."""
    frozen = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    held_class = freeze_class
    if motion is not None and spatial_scores is not None and freeze_class is not None:
        steps = motion_steps.detach().float() if motion_steps is not None else None
        frozen, share, stutter = held_segments(motion.detach().float(), steps)
        if stutter and stutter_class is not None:
            held_class = stutter_class
        if black_class is not None:
            frozen &= attribution_logits.detach().argmax(-1) != black_class
        if bool(frozen.any()):
            keep = 1.0 - (1.0 - FREEZE_SCALE) * share.to(scores.dtype)
            scores = torch.where(frozen, torch.minimum(scores, 1.0 + keep * (spatial_scores - 1.0)), scores)
    w = pooling_weights(scores)
    clip = (w * scores).sum()
    probs = torch.softmax(attribution_logits.detach().float(), -1)
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
