"""Tiny randomly initialised reasoning-model checkpoints in each family's released layout.

Builders used by the other ``test_lmm_*`` modules (imported as ``test_lmm_tiny``), plus checks
that what they write really is the released layout: sharded safetensors with an index, the
original key names, ``config.json`` and an offline ``tokenizer.json``.
"""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("tokenizers")

from safetensors.torch import save_file  # noqa: E402

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                  "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>", "<think>", "</think>",
                  "<answer>", "</answer>"]
WORDS = ["[UNK]", *"0123456789", ".", ",", ":", "<", ">", "-", "Frame", "Motion", "Feature", "Quality", "Amplitude",
         "Aesthetic", "Content", "Clarity", "Overall", "seconds", "video", "quality", "the", "is", "sharp", "blurry",
         "smooth", "good", "poor", "Video", "user", "assistant", "system", "４", "٣"]


def make_tokenizer(folder: str) -> None:
    """A WordLevel tokenizer with every family's special tokens, saved as tokenizer.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Fuse()  # tokens joined without spaces, like the byte-level BPE tokenizers
    # <think>/<answer> are ordinary vocabulary in the real tokenizers; here they are added (not special)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS[:10]])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in SPECIAL_TOKENS[10:]])
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "model_max_length": 1 << 20}, f)


def vocab_size() -> int:
    return len(WORDS) + len(SPECIAL_TOKENS)


def token_id(token: str) -> int:
    return (WORDS + SPECIAL_TOKENS).index(token)


def save_sharded(state: dict[str, torch.Tensor], folder: str, shards: int = 2) -> None:
    """Safetensors shards ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``."""
    keys = sorted(state)
    per = math.ceil(len(keys) / shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * per:(i + 1) * per]}
        save_file(part, os.path.join(folder, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)


# --------------------------------------------------------------------------------------------
# VQAThinker (InternVL chat layout + SlowFast + motion MLP)

VIT = dict(hidden=32, layers=1, heads=2, inter=64, patch=14, image_size=28)   # 2x2 stored position grid
LLM = dict(hidden=32, layers=2, heads=4, kv=2, inter=64)
SLOWFAST = dict(width=8, depths=(1, 1, 1, 1))


def vqathinker_config() -> dict:
    return {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "auto_map": {},
        "downsample_ratio": 0.5, "dynamic_image_size": True, "force_image_size": VIT["image_size"],
        "max_dynamic_patch": 12, "min_dynamic_patch": 1, "ps_version": "v2", "select_layer": -1,
        "template": "internvl2_5", "torch_dtype": "bfloat16", "use_thumbnail": True,
        "llm_config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": LLM["hidden"],
            "intermediate_size": LLM["inter"], "num_attention_heads": LLM["heads"],
            "num_key_value_heads": LLM["kv"], "num_hidden_layers": LLM["layers"], "vocab_size": vocab_size(),
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_scaling": {"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"}, "hidden_act": "silu",
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|endoftext|>"), "use_sliding_window": False, "sliding_window": 32768,
            "_name_or_path": "tiny", "attn_implementation": "flash_attention_2", "use_bfloat16": True,
            # generation / legacy fields that InternVL chat configs carry in llm_config
            "use_cache": False, "do_sample": False, "temperature": 1.0, "top_k": 50, "repetition_penalty": 1.0,
            "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1},
            "max_window_layers": 70, "tokenizer_class": None, "architectures_extra": None},
        "vision_config": {
            "architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", "hidden_size": VIT["hidden"],
            "intermediate_size": VIT["inter"], "num_attention_heads": VIT["heads"],
            "num_hidden_layers": VIT["layers"], "patch_size": VIT["patch"], "image_size": VIT["image_size"],
            "qkv_bias": True, "qk_normalization": False, "norm_type": "layer_norm", "layer_norm_eps": 1e-6,
            "hidden_act": "gelu", "use_flash_attn": True, "drop_path_rate": 0.0, "initializer_factor": 1.0},
    }


def vqathinker_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the released key names (InternViT, mlp1, language_model, motion branch)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from vqametric.backends.lmm.slowfast import SlowFastConfig, SlowFastMotion

    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    c, inter, p = VIT["hidden"], VIT["inter"], VIT["patch"]
    grid = VIT["image_size"] // p
    sd = {"vision_model.embeddings.class_embedding": rnd(1, 1, c),
          "vision_model.embeddings.patch_embedding.weight": rnd(c, 3, p, p, scale=0.05),
          "vision_model.embeddings.patch_embedding.bias": rnd(c),
          "vision_model.embeddings.position_embedding": rnd(1, 1 + grid * grid, c)}
    for i in range(VIT["layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        sd.update({pre + "attn.qkv.weight": rnd(3 * c, c), pre + "attn.qkv.bias": rnd(3 * c),
                   pre + "attn.proj.weight": rnd(c, c), pre + "attn.proj.bias": rnd(c),
                   pre + "mlp.fc1.weight": rnd(inter, c), pre + "mlp.fc1.bias": rnd(inter),
                   pre + "mlp.fc2.weight": rnd(c, inter), pre + "mlp.fc2.bias": rnd(c),
                   pre + "norm1.weight": 1 + rnd(c), pre + "norm1.bias": rnd(c),
                   pre + "norm2.weight": 1 + rnd(c), pre + "norm2.bias": rnd(c),
                   pre + "ls1": 0.5 + rnd(c), pre + "ls2": 0.5 + rnd(c)})
    h = LLM["hidden"]
    sd.update({"mlp1.0.weight": 1 + rnd(4 * c), "mlp1.0.bias": rnd(4 * c), "mlp1.1.weight": rnd(h, 4 * c),
               "mlp1.1.bias": rnd(h), "mlp1.3.weight": rnd(h, h), "mlp1.3.bias": rnd(h)})
    torch.manual_seed(seed)
    lcfg = Qwen2Config(hidden_size=h, intermediate_size=LLM["inter"], num_attention_heads=LLM["heads"],
                       num_key_value_heads=LLM["kv"], num_hidden_layers=LLM["layers"], vocab_size=vocab_size(),
                       tie_word_embeddings=False)
    lm = Qwen2ForCausalLM(lcfg)
    for k, v in lm.state_dict().items():
        sd["language_model." + k] = v.clone() if "rotary" not in k else v
    sd = {k: v for k, v in sd.items() if "rotary_emb" not in k}
    sf = SlowFastMotion(SlowFastConfig(**SLOWFAST))
    for k, v in sf.state_dict().items():
        if k.endswith("running_mean"):
            v = rnd(*v.shape, scale=0.1)
        elif k.endswith("running_var"):
            v = 0.5 + torch.rand(*v.shape, generator=g)
        elif k.endswith("num_batches_tracked"):
            v = torch.tensor(100)
        elif v.is_floating_point():
            v = rnd(*v.shape, scale=0.3)
        sd["slowfast_model." + k] = v
    dim = sf.config.feature_dim
    sd.update({"motion_mlp.0.weight": 1 + rnd(dim), "motion_mlp.0.bias": rnd(dim), "motion_mlp.1.weight": rnd(h, dim),
               "motion_mlp.1.bias": rnd(h), "motion_mlp.3.weight": rnd(h, h), "motion_mlp.3.bias": rnd(h)})
    return {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in sd.items()}


def build_vqathinker(folder: str, seed: int = 0) -> str:
    os.makedirs(folder, exist_ok=True)
    make_tokenizer(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(vqathinker_config(), f)
    save_sharded(vqathinker_state(seed), folder, shards=3)
    return folder


# --------------------------------------------------------------------------------------------
# Qwen2.5-VL (legacy key layout, as VisualQuality-R1-7B was saved) and Qwen3-VL


def qwen25_config():
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[0], tokens_per_second=2),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab_size(), max_position_embeddings=4096,
                         bos_token_id=token_id("<|endoftext|>"), eos_token_id=token_id("<|im_end|>"),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]}),
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
        eos_token_id=token_id("<|im_end|>"), pad_token_id=token_id("<|endoftext|>"), tie_word_embeddings=False)


def qwen3_config():
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                           deepstack_visual_indexes=[0]),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8, vocab_size=vocab_size(), max_position_embeddings=4096,
                         bos_token_id=token_id("<|endoftext|>"), eos_token_id=token_id("<|im_end|>"),
                         rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 1, 1],
                                          "mrope_interleaved": True}),
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False)


def _legacy_qwen25_key(key: str) -> str:
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


def build_qwen(folder: str, generation: str = "2.5", seed: int = 0):
    """Save a random tiny model; returns the in-memory model for comparisons."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    os.makedirs(folder, exist_ok=True)
    make_tokenizer(folder)
    torch.manual_seed(seed)
    if generation == "2.5":
        model = Qwen2_5_VLForConditionalGeneration(qwen25_config()).eval()
        rename = _legacy_qwen25_key
        with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
            json.dump({"image_mean": [0.48145466, 0.4578275, 0.40821073],
                       "image_std": [0.26862954, 0.26130258, 0.27577711], "patch_size": 14, "merge_size": 2,
                       "temporal_patch_size": 2}, f)
    else:  # Qwen3-VL was released in the current layout (model.visual.*, model.language_model.*)
        model = Qwen3VLForConditionalGeneration(qwen3_config()).eval()
        rename = str
    model.config.save_pretrained(folder)
    # the released checkpoints are bf16: keep the bf16-rounded weights for comparisons
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    save_sharded({rename(k): v.to(torch.bfloat16) for k, v in model.state_dict().items()}, folder, shards=2)
    return model


# --------------------------------------------------------------------------------------------
# a scripted language model: greedy decoding follows a fixed token chain


ANSWER_CHAIN = ["assistant", "<think>", "sharp", "</think>", "<answer>", "4", ".", "2", "5", "</answer>", "<|im_end|>"]


@torch.no_grad()
def script_language_model(model, chain=ANSWER_CHAIN, alpha: float = 4.0, alternatives=(("<answer>", "3", 0.85),),
                          keep_layers: bool = False):
    """Make ``model``'s language model answer ``chain``.

    The attention and MLP outputs of every decoder layer are zeroed, so the last hidden state at a
    position is the (normalised) embedding of its token; ``lm_head`` row ``next`` is set to
    ``alpha`` times the unit embedding of ``prev`` for each ``prev -> next`` pair of the chain, so the
    logits of a step are ``alpha * cos(e_prev, e_token)``: the chain's successor wins. Each
    ``(prev, tok, w)`` in ``alternatives`` adds ``w * alpha`` of ``prev``'s direction to ``tok``'s row,
    giving that step a second likely token (non-trivial level probabilities).

    ``keep_layers=True`` leaves the (small, random) decoder layers in place: the hidden states then
    carry a little of the prompt and the video, so the level probabilities differ from clip to
    clip while the chain still wins every step (checked by the tests that use it).
    """
    for name, module in model.named_modules():
        if "language_model.layers." in name and name.endswith(("self_attn.o_proj", "mlp.down_proj")):
            if not keep_layers:
                module.weight.zero_()
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        if name.endswith("language_model.norm"):
            module.weight.fill_(1.0)
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    head.zero_()

    def unit(tok):  # hidden states are e / rms(e) = sqrt(d) * e / |e|: rows scaled so logits = alpha * cos
        e = emb[token_id(tok)].float()
        return (e / e.norm() / e.numel() ** 0.5).to(head.dtype)

    for prev, nxt in zip(chain[:-1], chain[1:]):
        head[token_id(nxt)] += alpha * unit(prev)
    for prev, tok, w in alternatives:
        head[token_id(tok)] += w * alpha * unit(prev)


def scripted_level_probs(model, prev: str = "<answer>") -> list[float]:
    """Probabilities of the level tokens 1-5 after ``prev`` under the full-vocabulary softmax, computed
    from the weights (hidden state = RMS-normalised embedding, logits = lm_head @ hidden)."""
    e = model.get_input_embeddings().weight[token_id(prev)].float()
    h = e * torch.rsqrt(e.pow(2).mean() + 1e-6)
    logits = model.get_output_embeddings().weight.float() @ h
    p = torch.softmax(logits, 0)
    return [float(p[token_id(str(d))]) for d in range(1, 6)]


# --------------------------------------------------------------------------------------------
# the builders write the released layouts


def test_vqathinker_layout(tmp_path):
    folder = build_vqathinker(str(tmp_path / "vqathinker"))
    files = sorted(os.listdir(folder))
    assert "model.safetensors.index.json" in files and "config.json" in files and "tokenizer.json" in files
    assert sum(f.endswith(".safetensors") for f in files) == 3
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        keys = set(json.load(f)["weight_map"])
    for key in ["vision_model.embeddings.class_embedding", "vision_model.encoder.layers.0.attn.qkv.weight",
                "vision_model.encoder.layers.0.ls1", "mlp1.3.weight", "language_model.model.embed_tokens.weight",
                "language_model.lm_head.weight", "motion_mlp.1.weight",
                "slowfast_model.feature_extraction.0.multipathway_blocks.0.conv.weight",
                "slowfast_model.feature_extraction.0.multipathway_fusion.conv_fast_to_slow.weight",
                "slowfast_model.feature_extraction.4.multipathway_blocks.1.res_blocks.0.branch2.conv_c.weight"]:
        assert key in keys, key


def test_qwen25_legacy_layout(tmp_path):
    folder = str(tmp_path / "q25")
    build_qwen(folder, "2.5")
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        keys = set(json.load(f)["weight_map"])
    assert any(k.startswith("visual.blocks.0.") for k in keys)
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" in keys
    assert not any(k.startswith("model.language_model.") for k in keys)
