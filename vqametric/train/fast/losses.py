"""Losses of the fast-head recipe. Scores are on the 1-5 MOS scale throughout.

* :func:`bell_loss`: bell-shaped regression ``1 - exp(-(y_hat - y)^2 / (2 sigma^2))``; bounded,
  so a few badly-labelled images cannot dominate, but its gradient vanishes far from the target
  (the recipe adds a small :func:`smooth_l1` term for that);
* :func:`fidelity_loss`: Thurstone case-V fidelity between a predicted and a target preference
  probability, ``1 - sqrt(p p_hat) - sqrt((1 - p)(1 - p_hat))`` with
  ``p_hat = Phi((s_i - s_j) / (sqrt(2) sigma))``;
* :func:`batch_fidelity_loss`: the same over every pair of a batch with MOS targets,
  ``p = Phi((y_i - y_j) / (sqrt(2) sigma))``;
* :func:`ordered_fidelity_loss`: pairs whose order is known (a pristine clip above its degraded
  copy, a lower ladder level above a higher one): ``p = 1``;
* :func:`margin_loss`: temporal consistency, original above its perturbed copy by a margin;
* :func:`attribution_loss` and :func:`severity_loss`: cross-entropy over ("none",) + DISTORTIONS
  and binary cross-entropy of the per-distortion severities.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def _phi(x: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF."""
    return 0.5 * (1.0 + torch.erf(x / SQRT2))


def bell_loss(pred: torch.Tensor, target: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """Mean of ``1 - exp(-(pred - target)^2 / (2 sigma^2))``; 0 at the target, tends to 1 far away."""
    return (1.0 - torch.exp(-((pred - target) ** 2) / (2.0 * sigma ** 2))).mean()


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Huber-style L1 (``F.smooth_l1_loss``), a gradient where :func:`bell_loss` has none."""
    return F.smooth_l1_loss(pred, target, beta=beta)


def preference_probability(s_i: torch.Tensor, s_j: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """Thurstone case V: ``P(i better than j) = Phi((s_i - s_j) / (sqrt(2) sigma))``."""
    return _phi((s_i - s_j) / (SQRT2 * sigma))


def fidelity_loss(s_i: torch.Tensor, s_j: torch.Tensor, p: torch.Tensor | float, sigma: float = 0.25,
                  eps: float = 1e-12) -> torch.Tensor:
    """Mean fidelity loss of predicted scores ``s_i``, ``s_j`` against target probabilities ``p``."""
    p_hat = preference_probability(s_i, s_j, sigma)
    p = torch.as_tensor(p, dtype=p_hat.dtype, device=p_hat.device)
    return (1.0 - torch.sqrt(p * p_hat + eps) - torch.sqrt((1.0 - p) * (1.0 - p_hat) + eps)).mean()


def batch_fidelity_loss(pred: torch.Tensor, target: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """:func:`fidelity_loss` over all ``i < j`` pairs of a batch, targets from the MOS differences."""
    n = pred.shape[0]
    if n < 2:
        return pred.sum() * 0.0
    i, j = torch.triu_indices(n, n, 1, device=pred.device)
    p = preference_probability(target[i], target[j], sigma).detach()
    return fidelity_loss(pred[i], pred[j], p, sigma)


def ordered_fidelity_loss(better: torch.Tensor, worse: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """:func:`fidelity_loss` with ``p = 1``: ``1 - sqrt(p_hat)``."""
    return fidelity_loss(better, worse, 1.0, sigma)


def margin_loss(original: torch.Tensor, perturbed: torch.Tensor, margin: float = 0.25) -> torch.Tensor:
    """Mean ``relu(margin - (original - perturbed))``: zero once the original wins by ``margin``."""
    return F.relu(margin - (original - perturbed)).mean()


def attribution_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy over the attribution classes; ``ignore_index`` labels do not count."""
    if (labels != ignore_index).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


def severity_loss(severity: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of severities in [0, 1]; rows with ``mask`` False do not count."""
    loss = F.binary_cross_entropy(severity.clamp(1e-6, 1 - 1e-6), target, reduction="none").mean(1)
    if mask is not None:
        if mask.sum() == 0:
            return severity.sum() * 0.0
        return loss[mask].mean()
    return loss.mean()
