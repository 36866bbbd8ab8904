"""The GRPO :class:`~vqametric.train.reasoning.grpo.Policy` over a reasoning adapter."""
from __future__ import annotations

from typing import Sequence

import torch

from ....backends.lmm.base import Adapter
from ....backends.lmm.prompts import question_text
from ..grpo import Rollouts, completion_mask_from_eos, token_log_probs
from .base import TrainableVLM, train_mode
from .lora import LoRASettings
from .prompts import VideoPrompt


class VLMPolicy(TrainableVLM):
    """:class:`~vqametric.train.reasoning.grpo.Policy` over a reasoning adapter, for the family
    classes (:class:`~.qwen_vl.QwenVLPolicy`, :class:`~.vqathinker.VQAThinkerPolicy`).

    A prompt is a :class:`VideoPrompt` (:meth:`prompt` builds one from a video with the overall
    question the inference scorer asks); :meth:`perturb` is the trainer's ``perturb`` hook.
    ``max_new_tokens`` bounds each completion; ``lora`` (a :class:`LoRASettings`, a dict of its
    fields or True) trains a LoRA adapter instead of the whole language model; ``reference`` a
    frozen model to use instead of a deep copy (not with LoRA).

    Sampling is plain multinomial sampling at the given temperature (no top-k / top-p /
    repetition penalty, the checkpoint's own generation defaults kept out); completions are scored
    with one forward pass over prompt + completion with the same video inputs. The visual
    placeholder tokens are excluded from sampling and from the log-probabilities alike."""

    def __init__(self, adapter: Adapter, *, question: str | None = None, max_new_tokens: int = 1024,
                 lora: LoRASettings | dict | bool | None = None, reference: torch.nn.Module | None = None,
                 gradient_checkpointing: bool = False):
        super().__init__(adapter, lora=lora, reference=reference, gradient_checkpointing=gradient_checkpointing)
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.max_new_tokens = int(max_new_tokens)
        self.question = question if question is not None else question_text(
            "overall", one_score=adapter.one_score_prompt)

    def _generation_config(self, temperature: float | None = None):
        """Plain sampling at ``temperature``; with None, only the stop and pad tokens (what
        ``generate`` falls back on instead of the checkpoint's own defaults)."""
        from transformers import GenerationConfig  # transformers: optional (the lmm extra)

        if temperature is None:
            return GenerationConfig(eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id)
        return GenerationConfig(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0, num_beams=1,
                                repetition_penalty=1.0, max_new_tokens=self.max_new_tokens,
                                eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id,
                                suppress_tokens=list(self.suppressed) or None, use_cache=True)

    @torch.no_grad()
    def generate(self, prompts: Sequence[VideoPrompt], num_generations: int, temperature: float = 1.0) -> Rollouts:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        repeated = [p for p in prompts for _ in range(num_generations)]
        inputs = self._prompt_inputs(repeated)
        saved = self.base.generation_config
        # none of the checkpoint's generation defaults: generate() fills unset fields from this
        self.base.generation_config = self._generation_config()
        try:
            with train_mode(self.base, False):
                out = self.base.generate(**inputs, generation_config=self._generation_config(temperature))
        finally:
            self.base.generation_config = saved
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        p_len = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
        completion = sequences[:, p_len:]
        cmask = completion_mask_from_eos(completion, self.stop_ids)
        special = {self.pad_id, *self.stop_ids}
        texts = []
        for row, m in zip(completion.tolist(), cmask.tolist()):
            kept = [t for t, keep in zip(row, m) if keep and t not in special]
            texts.append(self.adapter.tokenizer.decode(kept, skip_special_tokens=True,
                                                       clean_up_tokenization_spaces=False))
        state = {"prompts": repeated, "temperature": float(temperature)}
        return Rollouts(completion, cmask, texts, num_generations, state)

    def _score(self, model, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        s = rollouts.state
        idx = rows.tolist()
        c = rollouts.completion_ids[rows.to(rollouts.completion_ids.device)]
        m = rollouts.completion_mask[rows.to(rollouts.completion_mask.device)]
        logits = self._forward(model, [s["prompts"][i] for i in idx], c, m)
        if self.suppressed:   # sampled with these tokens at -inf: the same distribution here
            logits = logits.index_fill(-1, torch.tensor(self.suppressed, device=logits.device), float("-inf"))
        return token_log_probs(logits, c.to(logits.device), s["temperature"])

    def log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        with train_mode(self.base, True):
            return self._score(self.base, rollouts, rows)

    @torch.no_grad()
    def ref_log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        with self._reference() as ref:
            return self._score(ref, rollouts, rows)
