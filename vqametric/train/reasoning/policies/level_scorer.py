"""The ASO :class:`~vqametric.train.reasoning.aso.LevelScorer` over a reasoning adapter: the
teacher-forced logits of the level tokens ``"1"`` ... ``"5"`` at each dimension's score position
of the five-dimension answer (the format :func:`~vqametric.backends.lmm.prompts.dimensions_task`
asks for)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ....backends.lmm.base import Adapter
from ....backends.lmm.prompts import OVERALL_NAME, ULTRAVQA_DIMENSIONS, dimensions_task
from ..grpo import token_log_probs
from .base import TrainableVLM, train_mode
from .lora import LoRASettings
from .prompts import VideoPrompt


@dataclass
class LevelSample:
    """One video for ASO: its prompt, the ``D`` dimension labels (NaN where not rated), the MOS
    and optionally a rationale (the text of the ``<think>`` section when teacher forcing)."""
    prompt: VideoPrompt
    labels: tuple[float, ...]
    mos: float
    rationale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def context_level(label: float, mos: float) -> int:
    """The level written in the teacher-forced answer: the label rounded half up (the MOS when the
    dimension is not rated), clamped to 1-5."""
    v = mos if label is None or (isinstance(label, float) and math.isnan(label)) else label
    return int(min(5, max(1, math.floor(float(v) + 0.5))))


class VLMLevelScorer(TrainableVLM):
    """:class:`~vqametric.train.reasoning.aso.LevelScorer` over a reasoning adapter, for the family
    classes (:class:`~.qwen_vl.QwenVLLevelScorer`, :class:`~.vqathinker.VQAThinkerLevelScorer`).

    A batch is a list of :class:`LevelSample`. The answer is teacher-forced in the format the
    dimension prompt asks for::

        <think>\\n{rationale}\\n</think>\\n<answer>\\nMotion Quality: 4\\n...\\nClarity Quality: 3\\n
        Overall Quality: 3.45\\n</answer>

    (an empty ``<think>`` section without a rationale; each level is the rounded label, the rounded
    MOS for an unrated dimension; the overall score is the MOS with two decimals).
    :meth:`level_logits` returns ``(N, D, 5)`` logits of the level tokens at the ``D`` score
    positions; :meth:`rationale_nll` the token-mean NLL of the rest of the answer (rationale and
    template, the level tokens left to ASO) plus the end-of-turn token."""

    def __init__(self, adapter: Adapter, *, dimensions: Sequence[str] = ULTRAVQA_DIMENSIONS,
                 overall_name: str = OVERALL_NAME, question: str | None = None,
                 lora: LoRASettings | dict | bool | None = None, reference: torch.nn.Module | None = None,
                 gradient_checkpointing: bool = False):
        if not adapter.level_ids or len(adapter.level_ids) != 5:
            raise ValueError("the tokenizer does not write each level 1-5 as one token; ASO needs level tokens")
        super().__init__(adapter, lora=lora, reference=reference, gradient_checkpointing=gradient_checkpointing)
        self.dimensions = tuple(dimensions)
        if not self.dimensions:
            raise ValueError("ASO needs at least one dimension")
        self.overall_name = overall_name
        self.level_ids = [int(i) for i in adapter.level_ids]
        self.question = question if question is not None else dimensions_task(self.dimensions, overall_name)

    def sample(self, video: Any, labels: Sequence[float], mos: float, rationale: str | None = None,
               fps: float | None = None) -> LevelSample:
        if len(labels) != len(self.dimensions):
            raise ValueError(f"{len(labels)} labels for {len(self.dimensions)} dimensions")
        return LevelSample(self.prompt(video, fps), tuple(float(x) for x in labels), float(mos), rationale)

    def answer_text(self, sample: LevelSample) -> tuple[str, list[int]]:
        """The teacher-forced answer and the character offset of each dimension's level digit."""
        r = (sample.rationale or "").strip()
        text = f"<think>\n{r}\n</think>\n<answer>\n" if r else "<think>\n</think>\n<answer>\n"
        digits = []
        for name, y in zip(self.dimensions, sample.labels):
            text += f"{name}: "
            digits.append(len(text))
            text += f"{context_level(y, sample.mos)}\n"
        text += f"{self.overall_name}: {sample.mos:.2f}\n</answer>"
        prefix = self.adapter.assistant_prefix
        if prefix and text.startswith(prefix):   # already in the prompt
            text = text[len(prefix):]
            digits = [d - len(prefix) for d in digits]
        return text, digits

    def _encode(self, batch: Sequence[LevelSample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ids (N, T), mask (N, T), level-digit positions (N, D))`` of the teacher-forced answers."""
        tok = self.adapter.tokenizer
        seqs, positions = [], []
        for s in batch:
            text, digits = self.answer_text(s)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
            pos = []
            for d, y in zip(digits, s.labels):
                hit = [i for i, (a, b) in enumerate(offsets) if a == d and b == d + 1]
                want = self.level_ids[context_level(y, s.mos) - 1]
                if not hit or ids[hit[0]] != want:
                    raise ValueError(f"the tokenizer does not give the level digit at character {d} of the answer "
                                     "its own level token; ASO needs '1'..'5' as single tokens after 'Name: '")
                pos.append(hit[0])
            seqs.append(ids + [self.end_id])
            positions.append(pos)
        ids, mask = self._pad(seqs)
        return ids, mask, torch.tensor(positions, dtype=torch.long, device=self.device)

    def _levels(self, model, batch: Sequence[LevelSample]) -> torch.Tensor:
        ids, mask, pos = self._encode(batch)
        keep = torch.unique(pos.flatten())                    # sorted completion positions
        logits = self._forward(model, [s.prompt for s in batch], ids, mask, keep=keep)   # (N, K, V)
        col = torch.searchsorted(keep, pos)                   # (N, D) column of each score position
        rows = torch.arange(len(batch), device=logits.device).unsqueeze(1)
        picked = logits[rows, col.to(logits.device)]           # (N, D, V)
        return picked[..., torch.tensor(self.level_ids, device=logits.device)]

    def level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        with train_mode(self.base, True):
            return self._levels(self.base, batch)

    @torch.no_grad()
    def reference_level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        with self._reference() as ref:
            return self._levels(ref, batch)

    @torch.no_grad()
    def policy_level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        """:meth:`level_logits` without gradients, in evaluation mode (measurements)."""
        with train_mode(self.base, False):
            return self._levels(self.base, batch)

    def rationale_nll(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        ids, attn, pos = self._encode(batch)
        with train_mode(self.base, True):
            logits = self._forward(self.base, [s.prompt for s in batch], ids, attn)
        weights = attn.clone()
        weights.scatter_(1, pos, 0.0)                         # the level tokens are ASO's
        lp = token_log_probs(logits, ids)
        return -(lp * weights).sum() / weights.sum().clamp_min(1.0)
