"""VQAThinker (InternVL3-8B + a SlowFast motion token), loaded without remote code.

The released checkpoint is an InternVL "chat" checkpoint (``model_type: internvl_chat``) with two
additions. Its weights map onto transformers' native ``InternVLForConditionalGeneration`` plus the
motion branch of this package:

================================================  ===================================================
checkpoint key                                    loaded into
================================================  ===================================================
``vision_model.embeddings.class_embedding``        ``model.vision_tower.embeddings.cls_token``
``vision_model.embeddings.patch_embedding.*``      ``model.vision_tower.embeddings.patch_embeddings.projection.*``
``vision_model.embeddings.position_embedding``     ``...position_embeddings`` (resampled to the tile grid)
``vision_model.encoder.layers.N.attn.qkv.*``       ``...encoder.layer.N.attention.{q,k,v}_proj.*`` (split in 3)
``...attn.proj.*`` / ``ls1`` / ``ls2``             ``...attention.projection_layer.*`` / ``lambda_1`` / ``lambda_2``
``...norm1.*`` / ``norm2.*`` / ``mlp.fc{1,2}.*``   ``...layernorm_before.*`` / ``layernorm_after.*`` / same
``mlp1.{0,1,3}.*``                                 ``model.multi_modal_projector.{layer_norm,linear_1,linear_2}.*``
``language_model.model.*``                         ``model.language_model.*``
``language_model.lm_head.weight``                  ``lm_head.weight``
``motion_mlp.{0,1,3}.*``, ``slowfast_model.*``     :class:`MotionBranch` (same names)
================================================  ===================================================

The InternViT position embedding is stored for the pre-training grid (448 / 14 = 32); the
original code resamples it to each input's patch grid with float32 bicubic interpolation on every
call. Here it is resampled once at load time, the same way, to the tile grid of the sampling
config (560 / 14 = 40), so the native encoder needs no interpolation.

Prompt (InternVL2.5/3 chat template, the model's own system message)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n
    Now you will receive a video:Frame1: <img><IMG_CONTEXT>x400</img>...Frame12: <img>...</img>
    Motion Feature: <img><IMG_CONTEXT></img>{question}<|im_end|>\\n<|im_start|>assistant\\n

(without the line breaks after ``user\\n`` and ``</img>``). Each frame is one 560x560 tile giving
``(560 / 14 / 2) ** 2 = 400`` tokens; the last ``<IMG_CONTEXT>`` of a prompt receives the motion
embedding, all the others the frames' vision embeddings in order.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SamplingError, WeightsNotFound
from ...io.frames import Frames
from ...sampling.dispatch import internvl_tiles
from ...sampling.plan import SamplingPlan
from .base import Adapter, PreparedClip, check_int8, load_tokenizer, replace_linear_int8, require_transformers
from .memory import check_fits, estimate_bytes
from .prompts import chatml
from .slowfast import SlowFastMotion, config_from_state_dict
from .weights import iter_tensors, tensor_index

#: InternVL2.5 / InternVL3 system message (the ``internvl2_5`` conversation template).
SYSTEM_MESSAGE = ("你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态"
                  "大语言模型。")
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
VIDEO_INTRO = "Now you will receive a video:"
MOTION_LABEL = "Motion Feature: "

_LLM_DROP = ("architectures", "auto_map", "_name_or_path", "torch_dtype", "dtype", "use_bfloat16",
             "transformers_version", "_attn_implementation", "_attn_implementation_autoset", "attn_implementation",
             "bias", "output_attentions", "output_hidden_states", "return_dict")


class MotionBranch(nn.Module):
    """SlowFast features -> one language-model embedding (``slowfast_model`` + ``motion_mlp``)."""

    def __init__(self, slowfast: SlowFastMotion, hidden_size: int):
        super().__init__()
        dim = slowfast.config.feature_dim
        self.slowfast_model = slowfast
        self.motion_mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden_size), nn.GELU(),
                                        nn.Linear(hidden_size, hidden_size))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` normalised frames -> ``(B, hidden)``."""
        return self.motion_mlp(self.slowfast_model(frames))


def native_config(chat: dict[str, Any], tile: int, vocab_size: int | None = None):
    """transformers ``InternVLConfig`` for an InternVL chat ``config.json`` at ``tile`` px tiles."""
    require_transformers()
    from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig, Qwen2Config  # optional: transformers

    llm = {k: v for k, v in dict(chat["llm_config"]).items() if k not in _LLM_DROP}
    arch = (chat["llm_config"].get("architectures") or ["Qwen2ForCausalLM"])[0]
    if arch == "Qwen2ForCausalLM":
        llm_cls = Qwen2Config
    elif arch == "LlamaForCausalLM":
        llm_cls = LlamaConfig
    else:
        raise WeightsNotFound(f"unsupported InternVL language model {arch!r}; Qwen2 and Llama are supported")
    llm.pop("model_type", None)
    text = llm_cls(**llm)
    v = chat["vision_config"]
    patch = int(v.get("patch_size", 14))
    ratio = float(chat.get("downsample_ratio", 0.5))
    if tile % patch or (tile // patch) % round(1 / ratio):
        raise WeightsNotFound(f"tile size {tile} must be a multiple of patch size x 1/downsample_ratio = "
                              f"{patch * round(1 / ratio)}")
    vision = InternVLVisionConfig(
        hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
        hidden_act=v.get("hidden_act", "gelu"), layer_norm_eps=v.get("layer_norm_eps", 1e-6),
        norm_type=v.get("norm_type", "rms_norm"), attention_bias=bool(v.get("qkv_bias", True)),
        use_qk_norm=bool(v.get("qk_normalization", False)), image_size=tile, patch_size=patch,
        num_channels=v.get("num_channels", 3), use_mean_pooling=True, use_absolute_position_embeddings=True)
    if str(chat.get("ps_version", "v2")) != "v2":
        raise WeightsNotFound(f"ps_version {chat.get('ps_version')!r} (transposed pixel shuffle) is not supported; "
                              "InternVL2.5 / InternVL3 checkpoints use 'v2'")
    select = int(chat.get("select_layer", -1))
    return InternVLConfig(vision_config=vision, text_config=text, downsample_ratio=ratio,
                          vision_feature_layer=select, vision_feature_select_strategy="default",
                          projector_hidden_act="gelu", tie_word_embeddings=bool(llm.get("tie_word_embeddings", False)),
                          image_seq_length=(tile // patch) ** 2 // round(1 / ratio) ** 2)


def resample_position_embedding(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """``(1, 1 + g*g, C)`` -> ``(1, 1 + grid*grid, C)``: class position kept, patch positions resampled
    with float32 bicubic interpolation (align_corners=False), cast back to the input dtype."""
    n = pos.shape[1] - 1
    g = math.isqrt(n)
    if g * g != n:
        raise WeightsNotFound(f"position embedding with {n} patch positions is not a square grid")
    patch = pos[:, 1:].float().reshape(1, g, g, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, size=(grid, grid), mode="bicubic", align_corners=False)
    patch = patch.reshape(1, -1, grid * grid).permute(0, 2, 1).to(pos.dtype)
    return torch.cat([pos[:, :1], patch], dim=1)


_VISION_RENAMES = (
    ("embeddings.class_embedding", "embeddings.cls_token"),
    ("embeddings.patch_embedding.", "embeddings.patch_embeddings.projection."),
    ("embeddings.position_embedding", "embeddings.position_embeddings"),
    (".attn.proj.", ".attention.projection_layer."),
    (".attn.q_norm.", ".attention.q_norm."),
    (".attn.k_norm.", ".attention.k_norm."),
    (".norm1.", ".layernorm_before."),
    (".norm2.", ".layernorm_after."),
)
_PROJECTOR = {"0": "layer_norm", "1": "linear_1", "3": "linear_2"}


def map_key(key: str) -> str | None:
    """Native name of a non-fused checkpoint key (``None``: not part of the native model)."""
    if key.startswith("vision_model."):
        k = "model.vision_tower." + key[len("vision_model."):]
        k = k.replace("encoder.layers.", "encoder.layer.")
        for old, new in _VISION_RENAMES:
            k = k.replace(old, new)
        if k.endswith(".ls1"):
            k = k[:-4] + ".lambda_1"
        elif k.endswith(".ls2"):
            k = k[:-4] + ".lambda_2"
        return k
    if key.startswith("mlp1."):
        idx, rest = key[len("mlp1."):].split(".", 1)
        return f"model.multi_modal_projector.{_PROJECTOR[idx]}.{rest}" if idx in _PROJECTOR else None
    if key.startswith("language_model.model."):
        return "model.language_model." + key[len("language_model.model."):]
    if key == "language_model.lm_head.weight":
        return "lm_head.weight"
    return None


def splice_visual_tokens(embeds: torch.Tensor, ids: torch.Tensor, context_id: int, feats: torch.Tensor,
                         motion: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``(B, L, D)`` with each prompt's ``<IMG_CONTEXT>`` positions filled: its
    frames' vision embeddings in order, then its motion embedding (the last position).

    ``ids`` ``(B, L')`` with ``L' <= L`` are the prompt token ids (positions beyond ``L'``, e.g. a
    completion, are never filled); ``feats`` ``(B * F, N, D)`` vision features, ``motion`` ``(B, D)``.
    Returns a new tensor (autograd flows to ``embeds`` elsewhere)."""
    visual = torch.zeros_like(embeds, requires_grad=False)
    where = torch.zeros(embeds.shape[:2], dtype=torch.bool, device=embeds.device)
    per_clip = feats.shape[0] // ids.shape[0]
    for b in range(ids.shape[0]):
        pos = (ids[b] == context_id).nonzero().squeeze(1)
        vis = feats[b * per_clip:(b + 1) * per_clip].reshape(-1, embeds.shape[-1])
        if pos.numel() != vis.shape[0] + 1:
            raise ValueError(f"prompt {b} has {pos.numel()} {IMG_CONTEXT} tokens for {vis.shape[0]} vision "
                             "embeddings + 1 motion embedding")
        visual[b, pos[:-1]] = vis.to(embeds.dtype)
        visual[b, pos[-1]] = motion[b].to(embeds.dtype)
        where[b, pos] = True
    return torch.where(where.unsqueeze(-1), visual, embeds)


class VQAThinkerAdapter(Adapter):
    family = "vqathinker"
    system_message = SYSTEM_MESSAGE

    def __init__(self, folder, config, **kw):
        super().__init__(folder, config, **kw)
        require_transformers()
        if self.load_in_8bit:
            check_int8(self.device)
        self.tile = int(self.sampling.global_size)
        if self.sampling.frame_rule == "segment_midpoints":
            self._check_frames(self.sampling.num_segments * self.sampling.frames_per_segment)
        self.index = tensor_index(folder)
        self.tokenizer = load_tokenizer(folder)
        self._init_tokens()
        self.context_id = self.token_id(IMG_CONTEXT)
        self.token_id(IMG_START), self.token_id(IMG_END)
        self.native = native_config(config, self.tile)
        self.native.image_token_id = self.context_id
        if self.attn_implementation:
            for c in (self.native, self.native.text_config, self.native.vision_config):
                c._attn_implementation = self.attn_implementation
        ratio = round(1 / self.native.downsample_ratio)
        self.tokens_per_frame = (self.tile // self.native.vision_config.patch_size[0] // ratio) ** 2
        self._check_memory(sequences=1, frames=self.sampling.num_segments, new_tokens=1024)
        self._load()

    # -- loading -----------------------------------------------------------------------------------
    def _check_memory(self, sequences: int, frames: int, new_tokens: int) -> None:
        est = self.memory_estimate(sequences, frames * (self.tokens_per_frame + 8) + 200, new_tokens)
        check_fits(est, self.device, f"{self.family} ({len(self.index)} tensors) in {self.dtype}")

    def memory_estimate(self, sequences: int, prompt_tokens: int, new_tokens: int):
        t = self.native.text_config
        v = self.native.vision_config
        frames = self.sampling.num_segments * sequences
        return estimate_bytes(
            self.index, self.dtype, layers=t.num_hidden_layers, kv_heads=t.num_key_value_heads,
            head_dim=getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads, hidden=t.hidden_size,
            prompt_tokens=prompt_tokens, new_tokens=new_tokens, sequences=sequences,
            vision_tokens=frames * ((self.tile // v.patch_size[0]) ** 2 + 1), vision_hidden=v.hidden_size,
            int8_prefixes=("language_model.model.layers.",) if self.load_in_8bit else ())

    def _load(self) -> None:
        from accelerate import init_empty_weights  # optional: accelerate (the lmm extra)
        from transformers import InternVLForConditionalGeneration  # optional: transformers

        shapes = {k: s for k, (_, s) in self.index.items()}
        if not any(k.startswith("slowfast_model.") for k in shapes) or "motion_mlp.1.weight" not in shapes:
            raise WeightsNotFound(f"{self.folder} has no motion branch (slowfast_model.* / motion_mlp.*): it is not "
                                  "a VQAThinker checkpoint; plain InternVL checkpoints are not supported")
        slowfast_cfg = config_from_state_dict(shapes, prefix="slowfast_model.")
        with init_empty_weights():
            model = InternVLForConditionalGeneration(self.native)
            motion = MotionBranch(SlowFastMotion(slowfast_cfg), self.native.text_config.hidden_size)
        load_device = torch.device("cpu") if self.load_in_8bit else self.device
        dim = self.native.vision_config.hidden_size
        grid = self.tile // self.native.vision_config.patch_size[0]
        native_sd: dict[str, torch.Tensor] = {}
        motion_sd: dict[str, torch.Tensor] = {}
        unexpected = []
        for key, load in iter_tensors(self.folder, load_device):
            if key.startswith(("slowfast_model.", "motion_mlp.")):
                motion_sd[key] = self._cast(load())
                continue
            if ".attn.qkv." in key and key.startswith("vision_model."):
                t = self._cast(load())
                base = map_key(key.replace(".attn.qkv.", ".attn.QKV."))
                for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                    native_sd[base.replace(".attn.QKV.", f".attention.{name}.")] = t[i * dim:(i + 1) * dim].clone()
                continue
            new = map_key(key)
            if new is None:
                unexpected.append(key)
                continue
            t = load()
            if key == "vision_model.embeddings.position_embedding":
                t = resample_position_embedding(t, grid)
            native_sd[new] = self._cast(t)
        if unexpected:
            raise WeightsNotFound(f"{self.folder} has weights this loader does not know: {unexpected[:5]}"
                                  + (" ..." if len(unexpected) > 5 else ""))
        tied = "lm_head.weight" not in native_sd and self.native.tie_word_embeddings
        expected = set(model.state_dict()) - ({"lm_head.weight"} if tied else set())
        missing = sorted(expected - set(native_sd))
        extra = sorted(set(native_sd) - expected)
        m_missing = sorted(set(motion.state_dict()) - set(motion_sd))
        if missing or extra or m_missing:
            raise WeightsNotFound(f"{self.folder} does not match the InternVL chat layout: missing "
                                  f"{(missing + m_missing)[:5]}, unexpected {extra[:5]}")
        model.load_state_dict(native_sd, strict=not tied, assign=True)
        motion.load_state_dict(motion_sd, strict=True, assign=True)
        if tied:
            model.lm_head.weight = model.model.language_model.embed_tokens.weight
        model.to(load_device)
        motion.to(load_device)
        if self.load_in_8bit:
            replace_linear_int8(model.model.language_model, self.device)
            model.to(self.device)
            motion.to(self.device)
        self.model = model.eval()
        self.motion = motion.eval()
        for p in list(self.model.parameters()) + list(self.motion.parameters()):
            p.requires_grad_(False)

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.dtype) if t.is_floating_point() else t

    @staticmethod
    def _check_frames(n: int) -> None:
        if n < 4 or n % 4:
            raise SamplingError(f"the VQAThinker motion branch (SlowFast, slow pathway = every 4th frame) needs a "
                                f"multiple of 4 frames, got {n}; the release uses 12 (sampling num_segments)")

    # -- inputs ------------------------------------------------------------------------------------
    def prepare(self, frames: Frames, plan: SamplingPlan, info) -> PreparedClip:
        self._check_frames(frames.num_frames)
        tiles = internvl_tiles(frames, size=self.tile, dtype=self.dtype, device=self.device,
                                         mean=plan.mean, std=plan.std)
        return PreparedClip({"tiles": tiles}, {"num_frames": int(tiles.shape[0])})

    def prompt(self, clip: PreparedClip, question: str) -> str:
        frame = IMG_START + IMG_CONTEXT * self.tokens_per_frame + IMG_END
        motion = IMG_START + IMG_CONTEXT + IMG_END
        frames = "".join(f"Frame{i + 1}: {frame}" for i in range(clip.meta["num_frames"]))
        return chatml(VIDEO_INTRO + frames + MOTION_LABEL + motion + question, system=self.system_message)

    @torch.inference_mode()
    def batch_inputs(self, clips: Sequence[PreparedClip], prompts: Sequence[str]) -> dict[str, Any]:
        enc = self.tokenize(prompts)
        ids = enc["input_ids"]
        tiles = [c.tensors["tiles"] for c in clips]
        counts = {t.shape[0] for t in tiles}
        if len(counts) != 1:
            raise ValueError(f"clips of one batch must have the same number of frames, got {sorted(counts)}")
        feats = self.model.model.get_image_features(
            pixel_values=torch.cat(tiles), vision_feature_layer=self.native.vision_feature_layer,
            vision_feature_select_strategy="default", return_dict=True).pooler_output
        motion = self.motion(torch.stack(tiles).permute(0, 2, 1, 3, 4).to(self.dtype))
        embeds = splice_visual_tokens(self.model.get_input_embeddings()(ids), ids, self.context_id, feats, motion)
        return {"inputs_embeds": embeds, "attention_mask": enc["attention_mask"]}


__all__ = ["VQAThinkerAdapter", "MotionBranch", "native_config", "map_key", "resample_position_embedding",
           "SYSTEM_MESSAGE", "IMG_START", "IMG_END", "IMG_CONTEXT"]
