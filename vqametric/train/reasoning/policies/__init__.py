"""Training adapters for the reasoning models, one module per family as inference has
(:mod:`vqametric.backends.lmm`): a GRPO :class:`~vqametric.train.reasoning.grpo.Policy` and an
ASO :class:`~vqametric.train.reasoning.aso.LevelScorer` on top of the inference adapters.

Both reuse the adapter's input building, so a training prompt is exactly what inference sends
(:mod:`.prompts`: :func:`prepare_prompt` opens, plans, decodes and prepares a clip and keeps its
frames; :func:`perturb_prompt` re-prepares it from a temporal perturbation of its frame indices
with the original timing, so the perturbed prompt has the same layout and length).

* :mod:`.base`: :class:`TrainableVLM`, what every family shares (the trainable parameters, the
  frozen reference, the forward pass over prompt + completion, saving);
* :mod:`.policy`: :class:`VLMPolicy` (GRPO: plain multinomial sampling, completions scored with
  one forward pass over prompt + completion with the same video inputs);
* :mod:`.level_scorer`: :class:`VLMLevelScorer` (ASO: teacher-forced logits of the level tokens
  ``"1"`` ... ``"5"`` at each dimension's score position);
* :mod:`.qwen_vl`: :class:`QwenVLPolicy`, :class:`QwenVLLevelScorer` (Qwen2.5-VL, Qwen3-VL);
* :mod:`.vqathinker`: :class:`VQAThinkerPolicy`, :class:`VQAThinkerLevelScorer` (InternVL3 +
  SlowFast motion token);
* :mod:`.lora`: :class:`LoRASettings` (needs ``peft``).

Trainable parameters: a LoRA adapter on the language model's linear layers (``lora=``) or the
whole language model (embeddings, decoder, LM head); the vision tower, the projector and the
motion branch stay frozen. The frozen reference is the model with its LoRA adapter disabled, or a
deep copy of the initial model (which doubles the memory). The visual placeholder tokens
(``<|video_pad|>``, ``<|image_pad|>``, ``<IMG_CONTEXT>``) are never sampled and never scored.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ....backends.lmm.base import Adapter
from .base import CHECKPOINT_EXTRA_FILES, TrainableVLM
from .level_scorer import LevelSample, VLMLevelScorer, context_level
from .lora import LORA_TARGETS, LoRASettings, language_parameters, require_peft
from .policy import VLMPolicy
from .prompts import VideoPrompt, perturb_prompt, prepare_prompt, select_frames
from .qwen_vl import QwenVLLevelScorer, QwenVLPolicy
from .vqathinker import VQAThinkerLevelScorer, VQAThinkerPolicy

#: The training classes of each family: ``kind -> classes``, tried in order by :func:`training_adapter`.
FAMILIES = {"grpo": (QwenVLPolicy, VQAThinkerPolicy), "aso": (QwenVLLevelScorer, VQAThinkerLevelScorer)}


def training_adapter(adapter: Adapter, kind: str, **kwargs) -> TrainableVLM:
    """The policy (``kind="grpo"``) or level scorer (``"aso"``) of ``adapter``'s family, built
    with ``kwargs``. Raises :class:`TypeError` for a family without training support and
    :class:`ValueError` for another ``kind``."""
    family = [i for i, cls in enumerate(FAMILIES["grpo"]) if cls.accepts(adapter)]
    if not family:
        raise TypeError(f"no training support for adapter {type(adapter).__name__} (family {adapter.family!r})")
    if kind not in FAMILIES:
        raise ValueError(f"kind must be 'grpo' or 'aso', got {kind!r}")
    return FAMILIES[kind][family[0]](adapter, **kwargs)


def iter_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[list[int]]:
    """Endless batches of indices into ``n`` items: a new permutation each epoch, every batch full
    (the last one of an epoch is topped up from the next permutation)."""
    if n < 1 or batch_size < 1:
        raise ValueError("need at least one item and a batch size of at least 1")
    pool: list[int] = []
    while True:
        while len(pool) < batch_size:
            pool.extend(int(i) for i in rng.permutation(n))
        yield pool[:batch_size]
        del pool[:batch_size]


__all__ = ["VideoPrompt", "prepare_prompt", "perturb_prompt", "select_frames", "LoRASettings", "LORA_TARGETS",
           "require_peft", "language_parameters", "TrainableVLM", "VLMPolicy", "QwenVLPolicy", "VQAThinkerPolicy",
           "LevelSample", "context_level", "VLMLevelScorer", "QwenVLLevelScorer", "VQAThinkerLevelScorer",
           "training_adapter", "iter_batches", "FAMILIES", "CHECKPOINT_EXTRA_FILES"]
