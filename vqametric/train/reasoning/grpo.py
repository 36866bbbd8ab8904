"""GRPO for the reasoning models, independent of any particular model.

Group Relative Policy Optimization (DeepSeekMath; the trainer VQAThinker's release uses):
for each prompt (a video and its question) the policy samples a group of ``G`` completions
(default 4, temperature 1); each completion gets a reward; its advantage is the reward
normalised within its group, ``(r - mean) / (std + 1e-4)``; the loss is the policy-gradient
surrogate with PPO-style clipping plus ``beta`` (default 0.04) times the k3 estimate of the KL to
the frozen reference policy, averaged over each completion's tokens and then over completions.

* :func:`group_advantages`, :func:`k3_kl`, :func:`policy_loss`: the maths, on tensors;
* :func:`token_log_probs`, :func:`completion_mask_from_eos`: helpers for policies;
* :func:`perturb_frame_indices`: VQAThinker's temporal perturbations applied to a prompt's
  frame indices (from :mod:`vqametric.train.fast.distortions`), for the temporal reward;
* :class:`Policy`: what a model must provide; :class:`CausalLMPolicy` implements it for a
  Hugging Face causal language model over token-id prompts (the reasoning adapters extend the
  same recipe with their video inputs);
* :class:`GRPOTrainer`: the loop. Its reward callback sees the whole batch at once (the ranking
  reward compares videos, the temporal reward compares each clip with its perturbed copy), which
  is why this is a trainer of our own rather than TRL's (docs/training-grpo-aso.md).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from ..config import option
from ..fast.distortions import BLACK, TEMPORAL_PERTURBATIONS, temporal_perturbation_indices
from .rewards import RewardBreakdown

ADVANTAGE_EPS = 1e-4


# ----------------------------------------------------------------------------------------------
# the maths
def group_advantages(rewards: torch.Tensor, eps: float = ADVANTAGE_EPS, scale: bool = True) -> torch.Tensor:
    """``(r - mean_g) / (std_g + eps)`` within each row of ``(B, G)`` rewards (``std`` unbiased,
    as in the release and TRL); ``scale=False`` only subtracts the mean (Dr. GRPO)."""
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (B, G) with G >= 2 rollouts per prompt, got {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + eps) if scale else centred


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi``:
    ``exp(ref - logp) - (ref - logp) - 1`` (non-negative, unbiased, 0 where they agree)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "sequence":     # mean over each completion's tokens, then over completions (GRPO, the release)
        return ((per_token * mask).sum(1) / mask.sum(1).clamp_min(1.0)).mean()
    if how == "token":        # mean over every token of the batch (DAPO)
        return (per_token * mask).sum() / mask.sum().clamp_min(1.0)
    raise ValueError(f"aggregation must be 'sequence' or 'token', got {how!r}")


def policy_loss(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                old_logp: torch.Tensor | None = None, ref_logp: torch.Tensor | None = None, beta: float = 0.04,
                clip_epsilon: float = 0.2, clip_epsilon_high: float | None = None,
                aggregation: str = "sequence") -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss of ``N`` completions from per-token log-probabilities ``(N, T)``.

    ``ratio = exp(logp - old_logp)`` (``old_logp=None``: the rollouts were sampled from the
    current policy, the ratio is 1 and only its gradient counts); per token
    ``-min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A) + beta k3(logp, ref_logp)``,
    masked by ``mask`` (1 on completion tokens up to and including EOS) and aggregated with
    ``aggregation``. ``ref_logp=None`` or ``beta=0`` drops the KL term. Returns the loss and
    ``{"kl", "clip_ratio"}`` for logging."""
    if logp.shape != mask.shape:
        raise ValueError(f"log-probs {tuple(logp.shape)} and mask {tuple(mask.shape)} differ")
    mask = mask.to(logp.dtype)
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    high = clip_epsilon if clip_epsilon_high is None else clip_epsilon_high
    a = advantages.to(logp.dtype).unsqueeze(1)
    unclipped, clipped = ratio * a, torch.clamp(ratio, 1.0 - clip_epsilon, 1.0 + high) * a
    per_token = -torch.min(unclipped, clipped)
    stats = {"clip_ratio": float(((clipped < unclipped).to(logp.dtype) * mask).sum() / mask.sum().clamp_min(1.0))}
    if ref_logp is not None and beta != 0.0:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
        stats["kl"] = float(_aggregate(kl.detach(), mask, "sequence"))
    return _aggregate(per_token, mask, aggregation), stats


def token_log_probs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / temperature)`` at ``ids``: ``(N, T, V)`` and ``(N, T)`` to ``(N, T)``,
    one row at a time to bound memory on large vocabularies."""
    out = []
    for row_logits, row_ids in zip(logits, ids):
        lp = torch.log_softmax(row_logits.float() / temperature, dim=-1)
        out.append(lp.gather(-1, row_ids.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


def completion_mask_from_eos(ids: torch.Tensor, eos_token_id: int | Sequence[int]) -> torch.Tensor:
    """1 on every completion token up to and including the first EOS (all tokens when there is
    none), 0 after it. ``ids`` ``(N, T)``; returns a float mask."""
    eos = torch.zeros_like(ids, dtype=torch.bool)
    for e in ([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id):
        eos |= ids == e
    first = torch.where(eos.any(1), eos.int().argmax(1), torch.full_like(ids[:, 0], ids.shape[1]))
    return (torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) <= first.unsqueeze(1)).float()


def perturb_frame_indices(indices: Sequence[int], rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A temporally perturbed copy of a prompt's frame indices.

    ``kind`` is one of :data:`vqametric.train.fast.distortions.TEMPORAL_PERTURBATIONS` (shuffle,
    local_shuffle, reverse, jitter, duplicate, black); ``None`` draws one uniformly per call, as
    the release does per clip. The transform comes from
    :func:`~vqametric.train.fast.distortions.temporal_perturbation_indices`; the result selects from
    ``indices`` and holds :data:`~vqametric.train.fast.distortions.BLACK` (-1) for a black frame."""
    idx = np.asarray(indices, dtype=np.int64)
    if kind is None:
        kind = TEMPORAL_PERTURBATIONS[int(rng.integers(0, len(TEMPORAL_PERTURBATIONS)))]
    t = temporal_perturbation_indices(kind, len(idx), seed=int(rng.integers(0, 2 ** 31 - 1)))
    return np.where(t == BLACK, BLACK, idx[np.maximum(t, 0)])


# ----------------------------------------------------------------------------------------------
# the policy interface
@dataclass
class Rollouts:
    """Sampled completions for ``B`` prompts, ``G`` each, row ``b * G + g``.

    ``completion_ids`` ``(B*G, T)`` (padded after EOS), ``completion_mask`` ``(B*G, T)`` float
    (:func:`completion_mask_from_eos`), ``texts`` the ``B*G`` decoded completions (special
    tokens removed), ``state`` whatever the policy needs to score the same rollouts again
    (prompt ids and masks, pixel values, the sampling temperature...)."""
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    num_generations: int
    state: Any = None

    def __post_init__(self):
        n = self.completion_ids.shape[0]
        if self.completion_mask.shape != self.completion_ids.shape or len(self.texts) != n:
            raise ValueError("completion_ids, completion_mask and texts must describe the same rollouts")
        if self.num_generations < 1 or n % self.num_generations:
            raise ValueError(f"{n} rollouts are not a whole number of groups of {self.num_generations}")

    @property
    def num_prompts(self) -> int:
        return self.completion_ids.shape[0] // self.num_generations

    def grouped_texts(self) -> list[list[str]]:
        g = self.num_generations
        return [self.texts[i * g:(i + 1) * g] for i in range(self.num_prompts)]


@runtime_checkable
class Policy(Protocol):
    """What :class:`GRPOTrainer` needs from a model.

    * ``generate(prompts, num_generations, temperature) -> Rollouts``: sample ``G`` completions
      per prompt (called under ``torch.no_grad``). A prompt is whatever the policy understands:
      token ids here, a clip's frames and question for the reasoning adapters.
    * ``log_probs(rollouts, rows) -> (len(rows), T)``: per-token log-probabilities of
      ``rollouts.completion_ids[rows]`` under the current policy, at the sampling temperature,
      differentiable with respect to the trainable parameters.
    * ``ref_log_probs(rollouts, rows) -> (len(rows), T)``: the same under the frozen reference
      policy (a copy of the initial model, or the model with its LoRA adapter disabled).
    * ``parameters()``: the trainable parameters (optimiser, gradient clipping).
    """

    def generate(self, prompts: Sequence[Any], num_generations: int, temperature: float) -> Rollouts: ...

    def log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor: ...

    def ref_log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...


RewardFn = Callable[[Sequence[Any], list[list[str]], "list[list[str]] | None"], RewardBreakdown]
PerturbFn = Callable[[Any, np.random.Generator], Any]


class CausalLMPolicy:
    """:class:`Policy` for a Hugging Face causal LM over prompts given as token-id sequences.

    ``decode(ids) -> str`` turns completion ids (EOS and padding already removed) into text;
    ``eos_token_id`` may be a list (every end-of-turn token of a chat model).
    ``ref_model``: ``None`` makes a frozen deep copy of ``model``; ``"adapter"`` uses the model
    itself with its PEFT adapter disabled (LoRA, no copy); or pass a model. ``model_inputs``
    optionally returns extra keyword inputs (for example pixel values) for a list of prompts,
    used for generation and scoring alike. Sampling is plain multinomial sampling at the given
    temperature (no top-k / top-p), so the log-probabilities are those of the sampling policy.
    """

    def __init__(self, model: torch.nn.Module, decode: Callable[[list[int]], str],
                 eos_token_id: int | Sequence[int], pad_token_id: int, max_new_tokens: int = 256, ref_model: Any = None,
                 model_inputs: Callable[[Sequence[Any]], Mapping[str, Any]] | None = None):
        self.model = model
        self.decode = decode
        self.eos_token_id = eos_token_id if isinstance(eos_token_id, int) else [int(e) for e in eos_token_id]
        self.pad_token_id = pad_token_id
        self._special = {pad_token_id, *([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id)}
        self.max_new_tokens = max_new_tokens
        self.model_inputs = model_inputs
        if ref_model is None:
            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.ref_model = ref_model

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _left_pad(self, prompts: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [torch.as_tensor(p, dtype=torch.long).flatten() for p in prompts]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):], mask[i, width - len(s):] = s, 1
        return ids.to(self.device), mask.to(self.device)

    def _extra(self, prompts: Sequence[Any]) -> dict[str, Any]:
        return dict(self.model_inputs(prompts)) if self.model_inputs is not None else {}

    @torch.no_grad()
    def generate(self, prompts: Sequence[Any], num_generations: int, temperature: float = 1.0) -> Rollouts:
        repeated = [p for p in prompts for _ in range(num_generations)]
        ids, mask = self._left_pad(repeated)
        from transformers import GenerationConfig  # transformers: optional (the lmm extra)

        # plain sampling from the policy: nothing that reshapes the distribution (top-k/top-p,
        # repetition penalty), and none of the checkpoint's own generation defaults
        cfg = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_beams=1,
                               repetition_penalty=1.0, max_new_tokens=self.max_new_tokens,
                               eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id)
        was_training, saved = self.model.training, getattr(self.model, "generation_config", None)
        self.model.eval()
        try:
            self.model.generation_config = GenerationConfig(eos_token_id=self.eos_token_id,
                                                            pad_token_id=self.pad_token_id)
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg,
                                      **self._extra(repeated))
        finally:
            self.model.train(was_training)
            if saved is not None:
                self.model.generation_config = saved
        completion = out[:, ids.shape[1]:]
        cmask = completion_mask_from_eos(completion, self.eos_token_id)
        texts = []
        for row, m in zip(completion.tolist(), cmask.tolist()):
            kept = [t for t, keep in zip(row, m) if keep and t not in self._special]
            texts.append(self.decode(kept))
        state = {"prompt_ids": ids, "prompt_mask": mask, "prompts": repeated, "temperature": temperature}
        return Rollouts(completion, cmask, texts, num_generations, state)

    def _score(self, model, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        s = rollouts.state
        rows = rows.to(s["prompt_ids"].device)
        p_ids, p_mask = s["prompt_ids"][rows], s["prompt_mask"][rows]
        c_ids = rollouts.completion_ids[rows]
        ids = torch.cat([p_ids, c_ids], 1)
        attn = torch.cat([p_mask, rollouts.completion_mask[rows].to(p_mask.dtype)], 1)
        pos = (attn.cumsum(1) - 1).clamp_min(0)
        extra = self._extra([s["prompts"][i] for i in rows.tolist()])
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, **extra).logits
        logits = logits[:, p_ids.shape[1] - 1:-1]
        return token_log_probs(logits, c_ids, s["temperature"])

    def log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        return self._score(self.model, rollouts, rows)

    @torch.no_grad()
    def ref_log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        if isinstance(self.ref_model, str):
            if self.ref_model != "adapter":
                raise ValueError(f"ref_model must be a model, None or 'adapter', got {self.ref_model!r}")
            with self.model.disable_adapter():
                return self._score(self.model, rollouts, rows)
        return self._score(self.ref_model, rollouts, rows)


# ----------------------------------------------------------------------------------------------
# the trainer
@dataclass
class GRPOConfig:
    """GRPO settings (release defaults where it has them).

    ``num_generations`` G; ``temperature`` of sampling; ``beta`` KL weight (0: no reference
    pass); ``clip_epsilon`` / ``clip_epsilon_high`` PPO clipping (only active when
    ``num_iterations > 1``, i.e. several updates per batch of rollouts); ``scale_rewards``
    divides by the group std; ``aggregation`` ``"sequence"`` or ``"token"``; ``micro_batch_size``
    rollouts per forward/backward pass (None: all at once; the result is the same);
    ``temporal`` rolls out a perturbed copy of every prompt (needs ``perturb``) with
    ``perturbed_generations`` completions each (None: G); ``max_grad_norm`` clipping (None: off);
    ``seed`` of the perturbation draws."""
    num_generations: int = option(4, lo=2, help="completions per video (G)")
    temperature: float = option(1.0, positive=True, help="sampling temperature (> 0)")
    beta: float = option(0.04, lo=0.0, help="KL weight")
    clip_epsilon: float = option(0.2, lo=0.0, hi=1.0)
    clip_epsilon_high: float | None = option(None, lo=0.0)
    num_iterations: int = option(1, lo=1, help="updates per batch of rollouts")
    advantage_eps: float = option(ADVANTAGE_EPS, lo=0.0)
    scale_rewards: bool = True
    aggregation: Literal["sequence", "token"] = "sequence"
    micro_batch_size: int | None = option(None, lo=1, zero_is_none=True, help="rollouts per forward pass (0: all)")
    temporal: bool = option(True, help="roll out a perturbed copy of each clip for the temporal bonus")
    perturbed_generations: int | None = option(None, lo=1, zero_is_none=True)
    max_grad_norm: float | None = option(1.0, lo=0.0, zero_is_none=True, help="gradient clipping (0: off)")
    seed: int = 0


def _prompt_of(sample: Any) -> Any:
    if isinstance(sample, Mapping):
        if "prompt" not in sample:
            raise KeyError("each sample needs a 'prompt' entry (what the policy generates from)")
        return sample["prompt"]
    if not hasattr(sample, "prompt"):
        raise AttributeError("each sample needs a 'prompt' attribute (what the policy generates from)")
    return sample.prompt


@dataclass
class StepResult:
    """What one :meth:`GRPOTrainer.step` did: logged numbers, the rewards, the rollouts."""
    stats: dict[str, float]
    rewards: RewardBreakdown
    rollouts: Rollouts
    perturbed: Rollouts | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class GRPOTrainer:
    """A compact GRPO loop over a :class:`Policy`.

    ``reward_fn(samples, texts, perturbed_texts) -> RewardBreakdown`` receives the whole batch:
    the ``B`` samples (each with ``prompt`` and whatever the reward needs, ``mos`` for
    :class:`vqametric.train.reasoning.rewards.VQAThinkerRewards`), the ``(B, G)`` completion texts and, when
    ``perturb`` is given and ``config.temporal`` is on, the texts of the perturbed copies.
    ``perturb(prompt, rng) -> prompt`` makes a temporally perturbed copy of a prompt
    (:func:`perturb_frame_indices` does the frame part)."""

    def __init__(self, policy: Policy, reward_fn: RewardFn, optimizer: torch.optim.Optimizer,
                 config: GRPOConfig | None = None, perturb: PerturbFn | None = None,
                 scheduler: Any = None):
        self.policy = policy
        self.reward_fn = reward_fn
        self.optimizer = optimizer
        self.config = config or GRPOConfig()
        self.perturb = perturb
        self.scheduler = scheduler
        self.rng = np.random.default_rng(self.config.seed)
        self.global_step = 0
        if self.config.num_generations < 2:
            raise ValueError("GRPO needs at least 2 generations per prompt (group-normalised advantages)")

    def _chunks(self, n: int) -> list[torch.Tensor]:
        size = self.config.micro_batch_size or n
        return [torch.arange(i, min(i + size, n)) for i in range(0, n, size)]

    def _batched(self, fn, rollouts: Rollouts, chunks) -> torch.Tensor:
        return torch.cat([fn(rollouts, rows).detach() for rows in chunks])

    def step(self, samples: Sequence[Any]) -> StepResult:
        """Roll out, reward, and update the policy on one batch of ``B`` samples."""
        c = self.config
        prompts = [_prompt_of(s) for s in samples]
        with torch.no_grad():
            rollouts = self.policy.generate(prompts, c.num_generations, c.temperature)
            perturbed = None
            if c.temporal and self.perturb is not None:
                pprompts = [self.perturb(p, self.rng) for p in prompts]
                perturbed = self.policy.generate(pprompts, c.perturbed_generations or c.num_generations,
                                                 c.temperature)
        if rollouts.num_prompts != len(samples) or rollouts.num_generations != c.num_generations:
            raise ValueError(f"the policy returned {rollouts.num_prompts} x {rollouts.num_generations} rollouts "
                             f"for {len(samples)} x {c.num_generations}")
        rewards = self.reward_fn(samples, rollouts.grouped_texts(),
                                 perturbed.grouped_texts() if perturbed is not None else None)
        total = torch.as_tensor(np.asarray(rewards.total), dtype=torch.float32)
        if total.shape != (len(samples), c.num_generations):
            raise ValueError(f"the reward function returned shape {tuple(total.shape)}, expected "
                             f"{(len(samples), c.num_generations)}")
        adv = group_advantages(total, c.advantage_eps, c.scale_rewards).flatten()
        n = adv.numel()
        mask = rollouts.completion_mask.float()
        device = mask.device
        adv = adv.to(device)
        chunks = self._chunks(n)
        with torch.no_grad():
            ref = self._batched(self.policy.ref_log_probs, rollouts, chunks) if c.beta != 0.0 else None
            old = self._batched(self.policy.log_probs, rollouts, chunks) if c.num_iterations > 1 else None
        history = []
        for _ in range(c.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            loss_sum, kl_sum, clip_sum = 0.0, 0.0, 0.0
            for rows in chunks:
                r = rows.to(device)
                logp = self.policy.log_probs(rollouts, rows)
                loss, st = policy_loss(logp, adv[r], mask[r], None if old is None else old[r],
                                       None if ref is None else ref[r], c.beta, c.clip_epsilon,
                                       c.clip_epsilon_high, c.aggregation)
                if c.aggregation == "sequence":
                    w = len(rows) / n
                else:
                    w = float(mask[r].sum() / mask.sum().clamp_min(1.0))
                (loss * w).backward()
                loss_sum += float(loss.detach()) * w
                kl_sum += st.get("kl", 0.0) * len(rows) / n
                clip_sum += st["clip_ratio"] * len(rows) / n
            grad_norm = math.nan
            if c.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(list(self.policy.parameters()), c.max_grad_norm))
            self.optimizer.step()
            history.append({"loss": loss_sum, "kl": kl_sum, "clip_ratio": clip_sum, "grad_norm": grad_norm})
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1
        stats = dict(history[-1])
        stats.update(rewards.means())
        stats["reward/group_std"] = float(total.std(dim=1).mean())
        stats["completion_length"] = float(mask.sum(1).mean())
        stats["step"] = float(self.global_step)
        return StepResult(stats, rewards, rollouts, perturbed, history)
