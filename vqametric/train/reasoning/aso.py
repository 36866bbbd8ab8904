"""Analytic Score Optimization (ASO): a closed-form target for the score-token distribution.

A reasoning model rates each quality dimension ``d`` with one of the discrete levels
``s = 1..5`` (the score token after its rationale). For a video ``x`` with label ``y`` the
KL-regularised objective

    max_pi  E_{s ~ pi}[r(s, y)] - beta KL(pi || pi_ref)

over distributions on the levels is strictly concave and has the closed-form optimum

    pi*(s | x) = pi_ref(s | x) exp(r(s, y) / beta) / Z,   Z = sum_s pi_ref(s | x) exp(r(s, y) / beta),

whose objective value is ``beta log Z`` (derivation in docs/training-grpo-aso.md). ASO trains the
policy's level distribution toward ``pi*`` with the frozen reference ``pi_ref`` (usually the
model after a supervised stage on rationale text): a KL (or cross-entropy) loss to a soft target
instead of sampled rollouts. The default reward is ordinal, ``r = -|s - y|``.

Limit: ``pi*(s) = 0`` wherever ``pi_ref(s) = 0``, whatever the reward, so a level the reference
never gives can never be learned. :func:`floor_reference` (``epsilon`` in the functions below)
mixes the reference with the uniform distribution, ``(1 - epsilon) pi_ref + epsilon / K``, which
gives every level at least ``epsilon / K``.

* :func:`ordinal_rewards`, :func:`closed_form_target`, :func:`floor_reference`;
* :func:`aso_loss` (KL or cross-entropy to the target, with a mask for missing labels),
  :func:`expected_score`, :func:`kl_divergence`, :func:`objective`, :func:`optimal_value`;
* :class:`ASOTrainer` over a :class:`LevelScorer` (a model that gives level logits, its frozen
  reference, and optionally the rationale NLL for the supervised stage).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Protocol, Sequence, runtime_checkable

import torch

from ..config import option

LEVELS = (1, 2, 3, 4, 5)
BETA = 0.5
RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# rewards and the closed form
def _f(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (half and bfloat16 logits are promoted; float64 stays float64)."""
    return x if x.dtype == torch.float64 else x.float()


def _levels(levels: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    lv = torch.as_tensor(levels, dtype=like.dtype if like.is_floating_point() else torch.float32,
                         device=like.device)
    if lv.ndim != 1 or lv.numel() < 2:
        raise ValueError("levels must be a 1-D sequence of at least two values")
    return lv


def ordinal_rewards(labels: torch.Tensor | Sequence[float], levels: Sequence[float] = LEVELS,
                    kind: str | RewardFn = "abs") -> torch.Tensor:
    """``r(s, y)`` for every level: ``(...,)`` labels give ``(..., K)`` rewards.

    ``kind``: ``"abs"`` (default) ``-|s - y|``, ``"squared"`` ``-(s - y)^2``, or a callable
    ``f(levels (K,), labels (..., 1)) -> (..., K)``. Labels may be fractional (rater means)."""
    y = torch.as_tensor(labels, dtype=torch.float32) if not torch.is_tensor(labels) else _f(labels)
    lv = _levels(levels, y)
    diff = lv - y.unsqueeze(-1)
    if kind == "abs":
        return -diff.abs()
    if kind == "squared":
        return -(diff ** 2)
    if callable(kind):
        return kind(lv, y.unsqueeze(-1))
    raise ValueError(f"kind must be 'abs', 'squared' or a callable, got {kind!r}")


def floor_reference(ref_probs: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``(1 - epsilon) pi_ref + epsilon / K``: still a distribution, every level at least
    ``epsilon / K`` (``epsilon`` in [0, 1])."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    return (1.0 - epsilon) * ref_probs + epsilon / ref_probs.shape[-1]


def reference_log_probs(ref_logits: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Log-probabilities of the (floored) reference from its logits (or log-probabilities;
    ``-inf`` marks a level with probability 0)."""
    logp = torch.log_softmax(_f(ref_logits), dim=-1)
    if epsilon > 0.0:
        logp = torch.log(floor_reference(logp.exp(), epsilon))
    return logp


def closed_form_target(ref_logits: torch.Tensor, rewards: torch.Tensor, beta: float = BETA,
                       epsilon: float = 0.0) -> torch.Tensor:
    """``pi* = pi_ref exp(r / beta) / Z`` as probabilities ``(..., K)``; ``ref_logits`` are the
    reference's level logits (any normalisation), ``rewards`` ``r(s, y)`` per level, ``epsilon``
    the optional floor of :func:`floor_reference`. Computed in log space (a softmax)."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if ref_logits.shape != rewards.shape:
        raise ValueError(f"reference logits {tuple(ref_logits.shape)} and rewards {tuple(rewards.shape)} differ")
    return torch.softmax(reference_log_probs(ref_logits, epsilon) + _f(rewards) / beta, dim=-1)


def optimal_value(ref_logits: torch.Tensor, rewards: torch.Tensor, beta: float = BETA,
                  epsilon: float = 0.0) -> torch.Tensor:
    """The objective at the optimum, ``beta log Z`` (``Z = sum pi_ref exp(r / beta)``)."""
    return beta * torch.logsumexp(reference_log_probs(ref_logits, epsilon) + _f(rewards) / beta, dim=-1)


def kl_divergence(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_s p (log p - log q)`` over the last axis, from log-probabilities;
    terms with ``p = 0`` count 0, a level with ``p > 0`` and ``q = 0`` gives ``inf``."""
    p = p_log.exp()
    terms = torch.where(p > 0, p * (p_log - q_log), torch.zeros_like(p))
    return terms.sum(-1)


def objective(logits: torch.Tensor, ref_logits: torch.Tensor, rewards: torch.Tensor, beta: float = BETA,
              epsilon: float = 0.0) -> torch.Tensor:
    """``E_pi[r] - beta KL(pi || pi_ref)`` of the policy with level ``logits``."""
    logp = torch.log_softmax(_f(logits), dim=-1)
    return (logp.exp() * rewards).sum(-1) - beta * kl_divergence(logp, reference_log_probs(ref_logits, epsilon))


def expected_score(logits: torch.Tensor, levels: Sequence[float] = LEVELS) -> torch.Tensor:
    """``sum_s s pi(s)``: the policy's expected level, ``(..., K)`` logits to ``(...,)``."""
    return (torch.softmax(_f(logits), dim=-1) * _levels(levels, _f(logits))).sum(-1)


def aso_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
             kind: str = "kl") -> torch.Tensor:
    """Mean over the valid entries of ``KL(pi* || pi_theta)`` (``kind="kl"``, 0 at the optimum)
    or of the cross-entropy ``-sum pi* log pi_theta`` (``"ce"``; the same gradient, shifted by
    the target's entropy). ``logits`` and ``target`` are ``(..., K)``; ``mask`` ``(...,)`` marks
    the entries that have a label."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    logp = torch.log_softmax(_f(logits), dim=-1)
    t = _f(target)
    ce = -(t * logp).sum(-1)
    if kind == "kl":
        per = ce + torch.where(t > 0, t * torch.log(t.clamp_min(1e-38)), torch.zeros_like(t)).sum(-1)
    elif kind == "ce":
        per = ce
    else:
        raise ValueError(f"kind must be 'kl' or 'ce', got {kind!r}")
    if mask is None:
        return per.mean()
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------------------------
# training
@runtime_checkable
class LevelScorer(Protocol):
    """What an ASO model provides (a reasoning adapter, or a small module in tests).

    ``level_logits(batch)``: ``(N, D, K)`` logits of the ``K`` level tokens ("1".."5") at each of
    the ``D`` dimensions' score positions, with gradients. ``reference_level_logits(batch)``: the
    same under the frozen reference (no gradients; the model before ASO, or the adapter-disabled
    model under LoRA). ``parameters()``: the trainable parameters. Optional
    ``rationale_nll(batch) -> scalar``: the token-mean negative log-likelihood of the reference
    rationale text, for the supervised stage (and as a regulariser during ASO)."""

    def level_logits(self, batch: Any) -> torch.Tensor: ...

    def reference_level_logits(self, batch: Any) -> torch.Tensor: ...

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...


@dataclass
class ASOConfig:
    """``beta``: KL weight (smaller pulls harder toward the labels); ``reward``: ``"abs"``,
    ``"squared"`` or a callable (see :func:`ordinal_rewards`); ``epsilon``: the reference floor;
    ``loss``: ``"kl"`` or ``"ce"``; ``sft_weight``: weight of the rationale NLL added to the ASO
    loss (0: off); ``max_grad_norm``: clipping (None: off)."""
    beta: float = option(BETA, positive=True, help="KL weight of the closed-form target (> 0)")
    reward: str | RewardFn = "abs"
    epsilon: float = option(0.0, lo=0.0, hi=1.0, help="reference floor")
    loss: Literal["kl", "ce"] = "kl"
    levels: tuple[float, ...] = LEVELS
    sft_weight: float = option(0.0, lo=0.0, help="rationale NLL added to the ASO loss")
    max_grad_norm: float | None = option(1.0, lo=0.0, zero_is_none=True, help="gradient clipping (0: off)")


class ASOTrainer:
    """A compact ASO loop: :meth:`sft_step` for the optional supervised stage, :meth:`step` for
    ASO proper. ``labels`` are ``(N, D)`` level targets with NaN where a dimension is not rated."""

    def __init__(self, scorer: LevelScorer, optimizer: torch.optim.Optimizer, config: ASOConfig | None = None):
        self.scorer = scorer
        self.optimizer = optimizer
        self.config = config or ASOConfig()

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.scorer.parameters() if p.requires_grad],
                                           self.config.max_grad_norm)
        self.optimizer.step()

    def sft_step(self, batch: Any) -> dict[str, float]:
        """One supervised step on the rationale text (``scorer.rationale_nll``)."""
        nll = getattr(self.scorer, "rationale_nll", None)
        if nll is None:
            raise AttributeError("the scorer has no rationale_nll(batch): the supervised stage needs one")
        loss = nll(batch)
        self._update(loss)
        return {"sft/nll": float(loss.detach())}

    def targets(self, batch: Any, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(target (N, D, K), mask (N, D), reference logits)`` for ``labels``."""
        c = self.config
        with torch.no_grad():
            ref = self.scorer.reference_level_logits(batch).detach().float()
        labels = torch.as_tensor(labels, dtype=torch.float32, device=ref.device)
        if labels.shape != ref.shape[:-1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match the level logits {tuple(ref.shape)}")
        mask = ~torch.isnan(labels)
        r = ordinal_rewards(torch.nan_to_num(labels, nan=float(c.levels[0])), c.levels, c.reward)
        return closed_form_target(ref, r, c.beta, c.epsilon), mask, ref

    def step(self, batch: Any, labels: torch.Tensor) -> dict[str, float]:
        """One ASO step; returns the loss, the KL of the policy and of the target to the
        reference, and the mean absolute error of the expected score on the rated entries."""
        c = self.config
        target, mask, ref = self.targets(batch, labels)
        logits = self.scorer.level_logits(batch)
        loss = aso_loss(logits, target, mask, c.loss)
        stats = {}
        if c.sft_weight > 0:
            nll = self.scorer.rationale_nll(batch)
            loss = loss + c.sft_weight * nll
            stats["sft/nll"] = float(nll.detach())
        self._update(loss)
        with torch.no_grad():
            ref_logp = reference_log_probs(ref, c.epsilon)
            logp = torch.log_softmax(logits.detach().float(), -1)
            m = mask.float()
            n = m.sum().clamp_min(1.0)
            labels = torch.as_tensor(labels, dtype=torch.float32, device=logits.device)
            err = (expected_score(logits.detach(), c.levels) - torch.nan_to_num(labels)).abs()
            stats.update({
                "aso/loss": float(loss.detach()),
                "aso/kl_policy_ref": float((kl_divergence(logp, ref_logp) * m).sum() / n),
                "aso/kl_target_ref": float((kl_divergence(torch.log(target), ref_logp) * m).sum() / n),
                "aso/mae": float((err * m).sum() / n),
            })
        return stats
