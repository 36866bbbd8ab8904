"""Training VQAThinker (InternVL3 with the SlowFast motion token): the frame tiles' and the
motion embeddings spliced into the input embeddings at the ``<IMG_CONTEXT>`` positions, position
ids from the attention mask, and full weights written back in the original InternVL chat layout."""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import torch
from safetensors.torch import save_file

from ....backends.lmm.base import Adapter
from ....backends.lmm.vqathinker import map_key, splice_visual_tokens
from ....backends.lmm.weights import iter_tensors
from .level_scorer import VLMLevelScorer
from .policy import VLMPolicy
from .prompts import VideoPrompt


class VQAThinkerTraining:
    """The VQAThinker steps of :class:`~.base.TrainableVLM` (mixed in before the base class)."""

    family_name = "vqathinker"

    @classmethod
    def accepts(cls, adapter: Adapter) -> bool:
        return getattr(adapter, "family", "") == "vqathinker"

    def _placeholder_ids(self) -> list[int]:
        return [int(self.adapter.context_id)]

    def _embeds(self, model, prompts: Sequence[VideoPrompt], ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """Input embeddings of prompt + completion with the frames' and the motion embeddings at the
        ``<IMG_CONTEXT>`` positions of the prompt (as ``VQAThinkerAdapter.batch_inputs``), outside
        inference mode so that the token embeddings keep their gradient."""
        a = self.adapter
        tiles = [p.clip.tensors["tiles"] for p in prompts]
        with torch.no_grad():
            feats = model.model.get_image_features(
                pixel_values=torch.cat(tiles), vision_feature_layer=a.native.vision_feature_layer,
                vision_feature_select_strategy="default", return_dict=True).pooler_output
            motion = a.motion(torch.stack(tiles).permute(0, 2, 1, 3, 4).to(a.dtype))
        embeds = model.get_input_embeddings()(ids)
        return splice_visual_tokens(embeds, ids[:, :prompt_len], a.context_id, feats, motion)

    def _sequence_inputs(self, model, prompts: Sequence[VideoPrompt], completion_ids: torch.Tensor,
                         completion_mask: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor, int]:
        enc = self.adapter.tokenize([p.text for p in prompts])
        ids, mask = enc["input_ids"], enc["attention_mask"]
        p_len = ids.shape[1]
        full = torch.cat([ids, completion_ids], 1)
        attn = torch.cat([mask, completion_mask.to(mask.dtype)], 1)
        kw = {"inputs_embeds": self._embeds(model, prompts, full, p_len),
              "position_ids": (attn.cumsum(1) - 1).clamp_min(0)}
        return kw, attn, p_len

    def _save_full(self, folder: str, state: dict[str, torch.Tensor]) -> None:
        """Every tensor of the source checkpoint, the language model's replaced by the trained ones."""
        out: dict[str, torch.Tensor] = {}
        for key, load in iter_tensors(self.adapter.folder, torch.device("cpu")):
            new = map_key(key)
            language = new is not None and (new.startswith("model.language_model.") or new == "lm_head.weight")
            if language and new in state:
                out[key] = state[new].detach().to("cpu").contiguous()   # the trained dtype
            else:
                out[key] = load().contiguous()
        save_file(out, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(self.adapter.folder, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)


class VQAThinkerPolicy(VQAThinkerTraining, VLMPolicy):
    """:class:`~.policy.VLMPolicy` for VQAThinker's InternVL layout."""


class VQAThinkerLevelScorer(VQAThinkerTraining, VLMLevelScorer):
    """:class:`~.level_scorer.VLMLevelScorer` for VQAThinker's InternVL layout."""
