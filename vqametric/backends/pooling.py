"""Clip-level pooling of segment outputs: freezes, worst-segment pooling, attribution.

Segments are scored independently by the head. Pooling decides what only the whole clip shows:

* **Freezes.** A segment whose frames hardly change (motion below ``FROZEN_MOTION`` and below
  ``FROZEN_SHARE`` of the clip's median segment motion; a re-encoded repeated frame is not
  bit-identical) is a *freeze* when the clip moves elsewhere (median segment motion at least
  ``MOVING_MOTION``) and the segment is not black (black frames are their own distortion); its
  score is then pulled toward 1: ``1 + FREEZE_SCALE * (spatial_score - 1)``. In a clip that does
  not move at all (a still image, a tripod shot, a slide) nothing is a freeze: those segments
  keep their spatial score, which is what the head gives for frames that do not change.
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


def frozen_segments(motion: torch.Tensor) -> torch.Tensor:
    """``(N,)`` motion per segment -> ``(N,)`` bool: frozen segments of a moving clip."""
    if motion.numel() < 2:
        return torch.zeros_like(motion, dtype=torch.bool)
    median = motion.median()
    return (motion < FROZEN_MOTION) & (motion < FROZEN_SHARE * median) & bool(median >= MOVING_MOTION)


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
         freeze_class: int | None = None, black_class: int | None = None) -> PooledClip:
    """Pool one clip's ``N`` segments (see the module docstring). ``motion``, ``spatial_scores``
    and ``freeze_class`` (the attribution class of a freeze; heads of architecture 6) enable the
    freeze rule; segments whose most likely class is ``black_class`` are never frozen."""
    frozen = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if motion is not None and spatial_scores is not None and freeze_class is not None:
        frozen = frozen_segments(motion.detach().float())
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
