"""Qwen2.5-VL and Qwen3-VL R1-style quality models (VisualQuality-R1 and the like).

The models are transformers' native ``Qwen2_5_VLForConditionalGeneration`` /
``Qwen3VLForConditionalGeneration`` loaded from safetensors (the legacy Qwen2.5-VL key layout,
``visual.*`` / ``model.layers.*``, is renamed by transformers itself). The processors are not used:

* frames -> ``pixel_values_videos`` and ``video_grid_thw`` with
  :func:`vqametric.sampling.dispatch.qwen_vl_patches` (fused kernels on CUDA, the reference elsewhere; no torchvision, no slow processor);
  patch / merge / temporal sizes come from the checkpoint's vision config, mean and std from its
  preprocessor config when present (the family's released values otherwise), and the per-frame
  pixel budget from the sampling config: ``global_size ** 2`` pixels, aspect ratio kept;
* the prompt is written here with exactly ``grid_t * grid_h * grid_w / merge**2`` video tokens
  (Qwen3-VL: one ``<t seconds><|vision_start|>...<|vision_end|>`` group per temporal patch, the
  time being the mean timestamp of the group's frames);
* ``mm_token_type_ids`` (0 text, 2 video) are always passed. In transformers 5 the models build
  their 3-D (time, height, width) rotary positions from them; without them Qwen2.5-VL silently
  falls back to 1-D text positions for the video tokens (Qwen3-VL raises). ``second_per_grid_ts``
  (Qwen2.5-VL's temporal position spacing) is the measured time between temporal patches.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import WeightsNotFound
from ...io.frames import Frames
from ...sampling.dispatch import qwen_vl_patches
from ...sampling.layouts import CLIP_MEAN, CLIP_STD, HALF_MEAN, HALF_STD, QwenVLLayout
from ...sampling.plan import SamplingPlan
from .base import Adapter, PreparedClip, check_int8, load_tokenizer, require_transformers
from .memory import check_fits, estimate_bytes
from .prompts import chatml
from .weights import read_json, tensor_index

VISION_START, VISION_END, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"
VIDEO_TOKEN_TYPE = 2


class QwenVLAdapter(Adapter):
    """Shared by both generations; subclasses set the model class and the family defaults."""

    model_class = ""
    default_mean: tuple[float, float, float] = CLIP_MEAN
    default_std: tuple[float, float, float] = CLIP_STD
    timestamps_in_prompt = False
    min_tokens_per_frame = 128
    one_score_prompt = True   # the R1-style question asks for "only one score"

    def __init__(self, folder, config, *, vision_id: bool = False, **kw):
        super().__init__(folder, config, **kw)
        require_transformers()
        if self.load_in_8bit:
            check_int8(self.device)
        self.vision_id = vision_id
        self.index = tensor_index(folder)
        self.tokenizer = load_tokenizer(folder)
        self._init_tokens()
        self.video_id = self.token_id(VIDEO_PAD)
        self.token_id(VISION_START), self.token_id(VISION_END)
        self.layout = self._layout()
        self._check_memory()
        self._load()

    def _layout(self) -> QwenVLLayout:
        v = self.config.get("vision_config", {})
        pre = read_json(self.folder, "video_preprocessor_config.json") or read_json(self.folder,
                                                                                  "preprocessor_config.json") or {}
        patch = int(v.get("patch_size", 14))
        merge = int(v.get("spatial_merge_size", 2))
        tp = int(v.get("temporal_patch_size", 2))
        factor = patch * merge
        budget = max(factor * factor, int(self.sampling.global_size) ** 2)
        low = min(self.min_tokens_per_frame * factor * factor, budget)
        mean = tuple(float(x) for x in pre.get("image_mean", self.default_mean))
        std = tuple(float(x) for x in pre.get("image_std", self.default_std))
        return QwenVLLayout(patch_size=patch, merge_size=merge, temporal_patch_size=tp, min_pixels=low,
                            max_pixels=budget, mean=mean, std=std)

    def _text_config(self) -> dict[str, Any]:
        return self.config.get("text_config") or self.config

    def memory_estimate(self, sequences: int, prompt_tokens: int, new_tokens: int):
        t = self._text_config()
        v = self.config.get("vision_config", {})
        heads = int(t["num_attention_heads"])
        hd = int(t.get("head_dim") or int(t["hidden_size"]) // heads)
        per_frame = self.layout.max_pixels // (self.layout.patch_size ** 2)
        return estimate_bytes(
            self.index, self.dtype, layers=int(t["num_hidden_layers"]),
            kv_heads=int(t.get("num_key_value_heads") or heads), head_dim=hd, hidden=int(t["hidden_size"]),
            prompt_tokens=prompt_tokens, new_tokens=new_tokens, sequences=sequences,
            vision_tokens=per_frame * self.sampling.num_segments * sequences,
            vision_hidden=int(v.get("hidden_size", 0) or 0),
            int8_prefixes=("model.layers.", "model.language_model.layers.") if self.load_in_8bit else ())

    def _check_memory(self) -> None:
        tokens = self.sampling.num_segments * self.layout.max_pixels // (self.layout.factor ** 2) + 200
        check_fits(self.memory_estimate(1, tokens, 1024), self.device, f"{self.family} in {self.dtype}")

    def _load(self) -> None:
        import transformers  # optional: transformers (the lmm extra)

        cls = getattr(transformers, self.model_class)
        kwargs: dict[str, Any] = dict(dtype=self.dtype, use_safetensors=True, local_files_only=True,
                                      trust_remote_code=False)
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.load_in_8bit:
            from transformers import BitsAndBytesConfig  # optional: transformers, bitsandbytes
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True,
                                                               llm_int8_skip_modules=["visual", "lm_head"])
            kwargs["device_map"] = {"": self.device}
        elif self.device.type != "cpu":
            kwargs["device_map"] = {"": self.device}
        try:
            model = cls.from_pretrained(self.folder, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise WeightsNotFound(f"could not load {self.folder} as {self.model_class}: {type(e).__name__}: {e}") from e
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    # -- inputs ------------------------------------------------------------------------------------
    def prepare(self, frames: Frames, plan: SamplingPlan, info) -> PreparedClip:
        pixel_values, grid = qwen_vl_patches(frames, self.layout, dtype=self.dtype, device=self.device)
        fps = float(info.fps) if info.fps and info.fps > 0 else 30.0
        ts = info.timestamps
        times = [float(ts[i]) - float(ts[0]) if ts and len(ts) == info.num_frames else i / fps
                 for i in plan.frame_indices]
        tp = self.layout.temporal_patch_size
        padded = times + [times[-1]] * (-len(times) % tp)
        group_times = [sum(padded[i:i + tp]) / tp for i in range(0, len(padded), tp)]
        if len(group_times) > 1:
            per_grid = (group_times[-1] - group_times[0]) / (len(group_times) - 1)
        else:
            per_grid = tp / fps
        if not per_grid > 0:
            per_grid = tp / fps
        return PreparedClip({"pixel_values_videos": pixel_values, "video_grid_thw": grid},
                            {"group_times": group_times, "second_per_grid": per_grid})

    def video_placeholder(self, clip: PreparedClip) -> str:
        gt, gh, gw = (int(x) for x in clip.tensors["video_grid_thw"][0].tolist())
        per_group = gh * gw // (self.layout.merge_size ** 2)
        if not self.timestamps_in_prompt:
            return VISION_START + VIDEO_PAD * (gt * per_group) + VISION_END
        return "".join(f"<{t:.1f} seconds>" + VISION_START + VIDEO_PAD * per_group + VISION_END
                       for t in clip.meta["group_times"])

    def prompt(self, clip: PreparedClip, question: str) -> str:
        vid = ("Video 1: " if self.vision_id else "") + self.video_placeholder(clip)
        return chatml(vid + question, system=self.system_message, assistant_prefix=self.assistant_prefix)

    def batch_inputs(self, clips: Sequence[PreparedClip], prompts: Sequence[str]) -> dict[str, Any]:
        enc = self.tokenize(prompts)
        ids = enc["input_ids"]
        types = (ids == self.video_id).to(torch.int32) * VIDEO_TOKEN_TYPE
        out = dict(enc, mm_token_type_ids=types,
                   pixel_values_videos=torch.cat([c.tensors["pixel_values_videos"] for c in clips]),
                   video_grid_thw=torch.cat([c.tensors["video_grid_thw"] for c in clips]).to(self.device))
        merge2 = self.layout.merge_size ** 2
        for b, c in enumerate(clips):
            need = int(c.tensors["video_grid_thw"].prod()) // merge2
            got = int((ids[b] == self.video_id).sum())
            if need != got:
                raise ValueError(f"prompt {b} has {got} {VIDEO_PAD} tokens for {need} video embeddings")
        return out


class Qwen25VLAdapter(QwenVLAdapter):
    family = "qwen2.5-vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    system_message = "You are a helpful assistant."
    default_mean, default_std = CLIP_MEAN, CLIP_STD

    def batch_inputs(self, clips, prompts):
        out = super().batch_inputs(clips, prompts)
        out["second_per_grid_ts"] = torch.tensor([c.meta["second_per_grid"] for c in clips], dtype=torch.float32,
                                                 device=self.device)
        return out


class Qwen3VLAdapter(QwenVLAdapter):
    family = "qwen3-vl"
    model_class = "Qwen3VLForConditionalGeneration"
    system_message = None
    default_mean, default_std = HALF_MEAN, HALF_STD
    timestamps_in_prompt = True


__all__ = ["QwenVLAdapter", "Qwen25VLAdapter", "Qwen3VLAdapter", "VIDEO_TOKEN_TYPE"]
