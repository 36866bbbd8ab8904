"""Clip-level pooling of segment outputs: freezes, worst-segment pooling, attribution.

Segments are scored independently by the head. Pooling decides what only the whole clip shows:

* **Freezes.** A frame step is *still* when its luma change is below ``FROZEN_MOTION`` and below
  ``FROZEN_SHARE`` of the clip's median segment motion (a re-encoded repeated frame is not
  bit-identical). A segment *holds* when it has ``HOLD_STEPS`` still steps in a row (the same
  picture three times: a segment inside a freeze, or one that straddles its start or end). Holding
  segments are *freezes* when the clip moves (median segment motion at least ``MOVING_MOTION``),
  when at most half of the clip's segments hold (holds everywhere are stutter, which the head's
  temporal penalty rates) and when the segment is not black (black frames are their own
  distortion). A freeze's score is pulled toward 1: ``1 + FREEZE_SCALE * (spatial_score - 1)``.
  In a clip that does not move at all (a still image, a tripod shot, a slide) nothing is a
  freeze: its segments keep their spatial score, which is what the head gives for frames that do
  not change. Without per-step motion (``motion_steps``) a segment holds when its mean motion is
  still.
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

FROZEN_MOTION = 1e-3    # mean absolute luma step (luma in [0, 1]) below which a segment may be frozen
FROZEN_SHARE = 0.05     # ... if it is also below this share of the clip's median segment motion
HOLD_STEPS = 2          # still steps in a row that make a segment hold (the same picture 3 times)
MOVING_MOTION = 2e-3    # median segment motion from which a clip counts as moving
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


def frozen_segments(motion: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """``(N,)`` mean motion per segment (and ``(N, K - 1)`` per-step motion) -> ``(N,)`` bool:
    the freezes of a moving clip (module docstring)."""
    n = motion.numel()
    if n < 2:
        return torch.zeros_like(motion, dtype=torch.bool)
    median = motion.median()
    if not bool(median >= MOVING_MOTION):
        return torch.zeros_like(motion, dtype=torch.bool)
    limit = min(FROZEN_MOTION, float(FROZEN_SHARE * median))
    if steps is None or steps.shape[-1] < HOLD_STEPS:
        holds = motion < limit
    else:
        still = (steps < limit).float()
        run = still.new_zeros(n)
        longest = still.new_zeros(n)
        for j in range(still.shape[-1]):
            run = (run + 1) * still[:, j]
            longest = torch.maximum(longest, run)
        holds = longest >= HOLD_STEPS
    if int(holds.sum()) * 2 > n:
        return torch.zeros_like(holds)
    return holds


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
         motion_steps: torch.Tensor | None = None) -> PooledClip:
    """Pool one clip's ``N`` segments (see the module docstring). ``motion``, ``spatial_scores``
    and ``freeze_class`` (the attribution class of a freeze; heads of architecture 6) enable the
    freeze rule, ``motion_steps`` ``(N, K - 1)`` lets it see holds inside a segment; segments whose
    most likely class is ``black_class`` are never frozen."""
    frozen = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if motion is not None and spatial_scores is not None and freeze_class is not None:
        steps = motion_steps.detach().float() if motion_steps is not None else None
        frozen = frozen_segments(motion.detach().float(), steps)
        if black_class is not None:
            frozen &= attribution_logits.detach().argmax(-1) != black_class
        if bool(frozen.any()):
            scores = torch.where(frozen, 1.0 + FREEZE_SCALE * (spatial_scores - 1.0), scores)
    w = pooling_weights(scores)
    clip = (w * scores).sum()
    probs = torch.softmax(attribution_logits.detach().float(), -1)
    if bool(frozen.any()):
        probs = probs.clone()
        probs[frozen] = 0.0
        probs[frozen, freeze_class] = 1.0
    wd = w.detach().float()
    attribution = (wd[:, None] * probs).sum(0)
    sev = (wd[:, None] * severity.detach().float()).sum(0)
    dominant = int(attribution.argmax())
    s = scores.detach().float()
    worst = int(s.argmin())
    if dominant == 0 and s.numel() > 1 and float(s.median() - s[worst]) >= DEFECT_DROP:
        dominant = 1 + int(probs[worst, 1:].argmax())
    return PooledClip(clip, scores, w, frozen, attribution, sev, dominant, probs.argmax(-1))
