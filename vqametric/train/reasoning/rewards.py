"""VQAThinker's GRPO rewards as pure functions, and their combination.

Every reward works on decoded completion text and MOS labels on the 1-5 scale. The release
(VQAThinker's ``open_r1`` training code) trains with ``--reward_funcs rank reg format``, G = 4
rollouts per video, and optionally the temporal-consistency bonus; the defaults below are its
constants, each one a parameter.

* :func:`regression_reward` (``reg``): bell-shaped
  ``exp(-(y_hat - y)^2 / (2 sigma^2))``, ``sigma = 0.5``, times ``0.8`` when the answer has fewer
  than two decimals;
* :func:`ranking_rewards` (``rank``): Thurstone fidelity of every rollout of a video against the
  rollout groups of the other videos of the batch;
* :func:`format_reward` (``format``): 1 when the whole completion is
  ``<think>...</think>`` then ``<answer>...</answer>``;
* :func:`temporal_bonus`: rollouts of a temporally perturbed copy of each clip are scored too;
  when the original batch's mean reward is at least the perturbed batch's, the original's good
  rollouts get ``+0.3``;
* :class:`VQAThinkerRewards` combines them for :class:`vqametric.train.reasoning.grpo.GRPOTrainer`;
  :func:`trl_reward_functions` wraps the three per-batch rewards in TRL's reward signature.

How a prediction is read (as in the release): the text of the *last* ``<answer>...</answer>``
(the whole completion when there is none), then its *first* number ``-?\\d+(\\.\\d+)?``. Decimals
are counted on that number with trailing zeros removed, because the release counts them on the
parsed float (``"3.50"`` counts as one decimal); ``count_trailing_zeros=True`` counts the digits
as written. One deliberate difference: when no number can be read, the release substitutes a
random integer from 1 to 5; here such a rollout gets regression and ranking reward 0 and is left
out of its group's mean and variance (``missing_value`` restores a fixed substitute instead).
See docs/training-grpo-aso.md.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..config import option

# ----------------------------------------------------------------------------------------------
# release defaults
SIGMA = 0.5                     # width of the bell-shaped regression reward
DECIMAL_PENALTY = 0.8           # factor when the answer is coarser than MIN_DECIMALS
MIN_DECIMALS = 2
FIDELITY_EPS = 1e-6             # inside the square roots of the fidelity reward
VARIANCE_EPS = 1e-6             # added to var_i + var_z in the Thurstone probability
TEMPORAL_BONUS = 0.3
RANKING_THRESHOLD = 0.5         # ranking rewards above this get the temporal bonus
REGRESSION_THRESHOLD = 0.9      # regression rewards above this get the temporal bonus
FORMAT_PATTERN = r"<think>.*?</think>\s*<answer>.*?</answer>"

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.(\d+))?")


# ----------------------------------------------------------------------------------------------
# reading the answer
@dataclass(frozen=True)
class ParsedScore:
    """The number read from a completion and how many decimals it counts as."""
    value: float
    decimals: int


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or a chat message list / dict with ``content``
    (TRL's conversational format, the last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")


def extract_answer(text: str) -> str:
    """The stripped text of the last ``<answer>...</answer>``, or the whole stripped text."""
    found = _ANSWER.findall(text)
    return (found[-1] if found else text).strip()


def parse_score(text: str, count_trailing_zeros: bool = False) -> ParsedScore | None:
    """The first number of :func:`extract_answer` (None when there is none) and its decimals."""
    m = _NUMBER.search(extract_answer(text))
    if m is None:
        return None
    frac = m.group(1) or ""
    if not count_trailing_zeros:
        frac = frac.rstrip("0")
    return ParsedScore(float(m.group(0)), len(frac))


def _read(text: str, count_trailing_zeros: bool, missing_value: float | None) -> ParsedScore | None:
    parsed = parse_score(text, count_trailing_zeros)
    if parsed is None and missing_value is not None:
        parsed = ParsedScore(float(missing_value), 0)
    return parsed


# ----------------------------------------------------------------------------------------------
# regression
def bell(pred: float, target: float, sigma: float = SIGMA) -> float:
    """``exp(-(pred - target)^2 / (2 sigma^2))``: 1 at the target, ``e^-0.5`` one sigma away."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return math.exp(-((pred - target) ** 2) / (2.0 * sigma ** 2))


def regression_reward(completion: Any, mos: float, sigma: float = SIGMA, decimal_penalty: float = DECIMAL_PENALTY,
                      min_decimals: int = MIN_DECIMALS, count_trailing_zeros: bool = False,
                      missing_value: float | None = None) -> float:
    """Bell-shaped regression reward of one completion against ``mos``.

    ``bell(y_hat, mos, sigma)``, times ``decimal_penalty`` when ``y_hat`` has fewer than
    ``min_decimals`` decimals. 0 when no number can be read (unless ``missing_value``)."""
    parsed = _read(completion_text(completion), count_trailing_zeros, missing_value)
    if parsed is None:
        return 0.0
    r = bell(parsed.value, float(mos), sigma)
    return r * decimal_penalty if parsed.decimals < min_decimals else r


# ----------------------------------------------------------------------------------------------
# ranking
def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def fidelity(p: float, gt: float, eps: float = FIDELITY_EPS) -> float:
    """``sqrt(p gt + eps) + sqrt((1 - p)(1 - gt) + eps)``: about 1 when ``p`` agrees with ``gt``."""
    return math.sqrt(p * gt + eps) + math.sqrt((1.0 - p) * (1.0 - gt) + eps)


def group_statistics(values: Sequence[float | None], ddof: int = 1) -> tuple[float, float] | None:
    """``(mean, variance)`` of a group's readable predictions (None entries left out); the
    variance is unbiased (``ddof=1``, as ``torch.var``) and 0 with a single value; None when
    the group has no readable prediction."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    var = float(v.var(ddof=ddof)) if v.size > ddof else 0.0
    return float(v.mean()), var


def ranking_rewards(predictions: Sequence[Sequence[float | None]], mos: Sequence[float],
                    eps: float = FIDELITY_EPS, var_eps: float = VARIANCE_EPS, ddof: int = 1) -> list[list[float]]:
    """Pairwise ranking reward of every rollout: ``out[i][j]`` for rollout ``j`` of video ``i``.

    For each other video ``z`` of the batch (``z != i``)::

        p  = Phi((y_ij - mean_z) / sqrt(var_i + var_z + var_eps))
        gt = 1 if mos_i > mos_z, 0 if mos_i < mos_z, 0.5 if equal
        r  = sqrt(p gt + eps) + sqrt((1 - p)(1 - gt) + eps)

    averaged over ``z``; ``mean``/``var`` are over each video's group of rollouts
    (:func:`group_statistics`). Rollouts without a readable prediction (None) get 0 and are left
    out of the statistics; videos without any are left out as comparisons. With no video to
    compare against (a batch of one video) every reward is 0, which gives no advantage.
    """
    if len(predictions) != len(mos):
        raise ValueError(f"{len(predictions)} groups of predictions for {len(mos)} MOS values")
    stats = [group_statistics(g, ddof) for g in predictions]
    out: list[list[float]] = []
    for i, group in enumerate(predictions):
        rows = []
        for y in group:
            terms = []
            if y is not None and stats[i] is not None:
                for z, sz in enumerate(stats):
                    if z == i or sz is None:
                        continue
                    gt = 1.0 if mos[i] > mos[z] else 0.0 if mos[i] < mos[z] else 0.5
                    p = normal_cdf((y - sz[0]) / math.sqrt(stats[i][1] + sz[1] + var_eps))
                    terms.append(fidelity(p, gt, eps))
            rows.append(float(np.mean(terms)) if terms else 0.0)
        out.append(rows)
    return out


# ----------------------------------------------------------------------------------------------
# format
def format_reward(completion: Any, pattern: str = FORMAT_PATTERN) -> float:
    """1.0 when the *whole* completion matches ``pattern`` (``re.fullmatch``, dot matches newlines):
    ``<think>...</think>``, optional whitespace, ``<answer>...</answer>``, nothing around."""
    return 1.0 if re.fullmatch(pattern, completion_text(completion), re.DOTALL) else 0.0


# ----------------------------------------------------------------------------------------------
# temporal consistency
def temporal_bonus(original: Mapping[str, Any], perturbed: Mapping[str, Any],
                   thresholds: Mapping[str, float] | None = None, bonus: float = TEMPORAL_BONUS,
                   scope: str = "batch") -> np.ndarray:
    """Bonus of each original rollout for being more reliable on the intact clip than on its
    temporally perturbed copy.

    ``original[name]`` is a ``(B, G)`` array of reward ``name`` for the original rollouts,
    ``perturbed[name]`` the same reward for the perturbed copy's rollouts (``(B, G')``). For each
    ``name`` of ``thresholds`` (default ``{"ranking": 0.5, "regression": 0.9}``) separately:
    when ``mean(original[name]) >= mean(perturbed[name])``, every original rollout whose
    ``original[name]`` exceeds the threshold gets ``bonus``. The release compares means over the
    whole batch (``scope="batch"``); ``scope="video"`` compares each video's own rollouts.
    Returns the ``(B, G)`` sum of the bonuses (up to ``bonus`` times the number of rewards).
    """
    thresholds = dict(thresholds if thresholds is not None
                      else {"ranking": RANKING_THRESHOLD, "regression": REGRESSION_THRESHOLD})
    if scope not in ("batch", "video"):
        raise ValueError(f"scope must be 'batch' or 'video', got {scope!r}")
    total = None
    for name, threshold in thresholds.items():
        if name not in original or name not in perturbed:
            raise KeyError(f"temporal bonus needs reward {name!r} for the original and the perturbed rollouts")
        o = np.asarray(original[name], dtype=np.float64)
        p = np.asarray(perturbed[name], dtype=np.float64)
        if o.ndim != 2 or p.ndim != 2 or o.shape[0] != p.shape[0]:
            raise ValueError(f"reward {name!r}: expected (B, G) arrays with the same B, got {o.shape} and {p.shape}")
        if scope == "batch":
            ok = np.full((o.shape[0], 1), o.mean() >= p.mean())
        else:
            ok = (o.mean(axis=1) >= p.mean(axis=1))[:, None]
        add = np.where(ok & (o > threshold), bonus, 0.0)
        total = add if total is None else total + add
    if total is None:
        raise ValueError("thresholds must name at least one reward")
    return total


# ----------------------------------------------------------------------------------------------
# combination
@dataclass
class RewardConfig:
    """Constants of the combined reward (release defaults). ``weights`` multiplies each reward
    in the sum; a reward with weight 0 is still computed and logged."""
    sigma: float = option(SIGMA, positive=True, help="width of the regression reward (> 0)")
    decimal_penalty: float = option(DECIMAL_PENALTY, lo=0.0, hi=1.0)
    min_decimals: int = option(MIN_DECIMALS, lo=0)
    count_trailing_zeros: bool = False
    missing_value: float | None = None
    fidelity_eps: float = option(FIDELITY_EPS, lo=0.0)
    variance_eps: float = option(VARIANCE_EPS, lo=0.0)
    format_pattern: str = FORMAT_PATTERN
    temporal: bool = True
    temporal_bonus: float = option(TEMPORAL_BONUS, lo=0.0)
    temporal_thresholds: dict[str, float] = option({"ranking": RANKING_THRESHOLD, "regression": REGRESSION_THRESHOLD},
                                                   names=("ranking", "regression"))
    temporal_scope: Literal["batch", "video"] = "batch"
    weights: dict[str, float] = option({"ranking": 1.0, "regression": 1.0, "format": 1.0, "temporal": 1.0},
                                       names=("ranking", "regression", "format", "temporal"))


@dataclass
class RewardBreakdown:
    """Per-rollout rewards: ``components[name]`` and ``total`` are ``(B, G)`` float arrays
    (row ``i``: the rollouts of video ``i``); ``perturbed`` holds the perturbed rollouts'
    components when the temporal reward ran."""
    components: dict[str, np.ndarray]
    total: np.ndarray
    perturbed: dict[str, np.ndarray] | None = None

    def means(self) -> dict[str, float]:
        out = {f"reward/{k}": float(v.mean()) for k, v in self.components.items()}
        out["reward/total"] = float(self.total.mean())
        return out


def _mos_of(sample: Any) -> float:
    if isinstance(sample, Mapping):
        if "mos" not in sample:
            raise KeyError("each sample needs a 'mos' entry for the rewards")
        return float(sample["mos"])
    if not hasattr(sample, "mos"):
        raise AttributeError("each sample needs a 'mos' attribute for the rewards")
    return float(sample.mos)


def score_groups(texts: Sequence[Sequence[Any]], mos: Sequence[float], config: RewardConfig | None = None
                 ) -> dict[str, np.ndarray]:
    """``ranking``, ``regression`` and ``format`` rewards of ``texts[i][j]`` (rollout ``j`` of
    video ``i``), each a ``(B, G)`` array. All groups must have the same size."""
    c = config or RewardConfig()
    if len(texts) != len(mos):
        raise ValueError(f"{len(texts)} groups of completions for {len(mos)} MOS values")
    sizes = {len(g) for g in texts}
    if len(sizes) > 1:
        raise ValueError(f"every video needs the same number of rollouts, got group sizes {sorted(sizes)}")
    strs = [[completion_text(t) for t in g] for g in texts]
    preds = [[None if (p := _read(t, c.count_trailing_zeros, c.missing_value)) is None else p.value for t in g]
             for g in strs]
    reg = [[regression_reward(t, m, c.sigma, c.decimal_penalty, c.min_decimals, c.count_trailing_zeros,
                              c.missing_value) for t in g] for g, m in zip(strs, mos)]
    rank = ranking_rewards(preds, mos, c.fidelity_eps, c.variance_eps)
    fmt = [[format_reward(t, c.format_pattern) for t in g] for g in strs]
    as_array = lambda x: np.asarray(x, dtype=np.float64).reshape(len(strs), -1)  # noqa: E731
    return {"ranking": as_array(rank), "regression": as_array(reg), "format": as_array(fmt)}


def combine(components: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """``sum_k weights[k] * components[k]`` (weight 1 for names not in ``weights``)."""
    weights = weights or {}
    total = None
    for name, value in components.items():
        term = float(weights.get(name, 1.0)) * np.asarray(value, dtype=np.float64)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no reward components")
    return total


class VQAThinkerRewards:
    """The release's reward: ranking + regression + format (+ the temporal bonus when the
    perturbed rollouts are given), summed with :attr:`RewardConfig.weights`.

    Call it with the batch's samples (each with ``mos``, a mapping key or an attribute), the
    ``(B, G)`` completions and optionally the perturbed copy's ``(B, G')`` completions; it is the
    ``reward_fn`` of :class:`vqametric.train.reasoning.grpo.GRPOTrainer`."""

    def __init__(self, config: RewardConfig | None = None):
        self.config = config or RewardConfig()

    def __call__(self, samples: Sequence[Any], texts: Sequence[Sequence[Any]],
                 perturbed_texts: Sequence[Sequence[Any]] | None = None) -> RewardBreakdown:
        c = self.config
        mos = [_mos_of(s) for s in samples]
        comps = score_groups(texts, mos, c)
        pert = None
        if c.temporal and perturbed_texts is not None:
            pert = score_groups(perturbed_texts, mos, c)
            comps["temporal"] = temporal_bonus(comps, pert, c.temporal_thresholds, c.temporal_bonus,
                                               c.temporal_scope)
        return RewardBreakdown(comps, combine(comps, c.weights), pert)


# ----------------------------------------------------------------------------------------------
# TRL's reward signature
def trl_reward_functions(config: RewardConfig | None = None, mos_key: str = "mos", group_key: str = "path"):
    """``[rank, reg, format]`` callables in TRL's reward signature
    ``f(prompts, completions, **columns) -> list[float]`` (checked against TRL 1.16).

    ``columns[mos_key]`` gives each completion's MOS and ``columns[group_key]`` which video it
    belongs to (rollouts of the same video share it): TRL passes the dataset columns repeated per
    completion but not the group size. Ranking uses the completions one process sees, as the
    release does. There is no temporal bonus here: TRL has no paired perturbed rollouts (see
    docs/training-grpo-aso.md)."""
    c = config or RewardConfig()

    def _groups(completions, kwargs):
        if mos_key not in kwargs or group_key not in kwargs:
            raise KeyError(f"the dataset needs columns {mos_key!r} and {group_key!r} for the VQAThinker rewards")
        keys, mos = kwargs[group_key], kwargs[mos_key]
        order: dict[Any, list[int]] = {}
        for n, k in enumerate(keys):
            order.setdefault(k if isinstance(k, (str, int, float, tuple)) else str(k), []).append(n)
        idx = list(order.values())
        return idx, [[completion_text(completions[n]) for n in g] for g in idx], [float(mos[g[0]]) for g in idx]

    def rank(prompts=None, completions=(), **kwargs):
        idx, texts, mos = _groups(completions, kwargs)
        preds = [[None if (p := _read(t, c.count_trailing_zeros, c.missing_value)) is None else p.value
                  for t in g] for g in texts]
        vals = ranking_rewards(preds, mos, c.fidelity_eps, c.variance_eps)
        out = [0.0] * len(completions)
        for g, v in zip(idx, vals):
            for n, r in zip(g, v):
                out[n] = r
        return out

    def reg(prompts=None, completions=(), **kwargs):
        return [regression_reward(t, m, c.sigma, c.decimal_penalty, c.min_decimals, c.count_trailing_zeros,
                                  c.missing_value) for t, m in zip(completions, kwargs[mos_key])]

    def fmt(prompts=None, completions=(), **kwargs):
        return [format_reward(t, c.format_pattern) for t in completions]

    rank.__name__, reg.__name__, fmt.__name__ = "rank", "reg", "format"
    return [rank, reg, fmt]
