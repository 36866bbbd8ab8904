"""Training Qwen2.5-VL and Qwen3-VL (R1-style quality models such as VisualQuality-R1): the
video tensors inference builds (``pixel_values_videos``, ``video_grid_thw``,
``mm_token_type_ids``, ``second_per_grid_ts``), the completion appended as text."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch

from ....backends.lmm.base import Adapter
from ....backends.lmm.qwen_vl import QwenVLAdapter
from .level_scorer import VLMLevelScorer
from .policy import VLMPolicy
from .prompts import VideoPrompt


class QwenVLTraining:
    """The Qwen-VL steps of :class:`~.base.TrainableVLM` (mixed in before the base class)."""

    family_name = "qwen2.5-vl / qwen3-vl"

    @classmethod
    def accepts(cls, adapter: Adapter) -> bool:
        return isinstance(adapter, QwenVLAdapter)

    def _placeholder_ids(self) -> list[int]:
        cfg = self.base.config
        ids = {getattr(cfg, "video_token_id", None), getattr(cfg, "image_token_id", None), self.adapter.video_id}
        return sorted(int(i) for i in ids if i is not None)

    def _sequence_inputs(self, model, prompts: Sequence[VideoPrompt], completion_ids: torch.Tensor,
                         completion_mask: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor, int]:
        inputs = self._prompt_inputs(prompts)
        ids, mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
        types = inputs.pop("mm_token_type_ids")
        text_types = torch.zeros_like(completion_ids, dtype=types.dtype)          # the completion is text
        kw = dict(inputs, input_ids=torch.cat([ids, completion_ids], 1),
                  mm_token_type_ids=torch.cat([types, text_types], 1))
        return kw, torch.cat([mask, completion_mask.to(mask.dtype)], 1), ids.shape[1]

    def _save_full(self, folder: str, state: dict[str, torch.Tensor]) -> None:
        if self.peft_model is None:
            self.base.save_pretrained(folder, safe_serialization=True)
            return
        with torch.device("meta"):                            # an empty shell holding the merged tensors
            model = type(self.base)(copy.deepcopy(self.base.config))
        model.load_state_dict(state, strict=True, assign=True)
        model.generation_config = copy.deepcopy(self.base.generation_config)
        model.save_pretrained(folder, safe_serialization=True)


class QwenVLPolicy(QwenVLTraining, VLMPolicy):
    """:class:`~.policy.VLMPolicy` for the Qwen2.5-VL / Qwen3-VL adapters."""


class QwenVLLevelScorer(QwenVLTraining, VLMLevelScorer):
    """:class:`~.level_scorer.VLMLevelScorer` for the Qwen2.5-VL / Qwen3-VL adapters."""
