"""The VQAThinker adapter on a tiny checkpoint in the released InternVL-chat layout.

* the weights mapped into transformers' native InternVL classes give the same logits as an
  independent forward pass written against the ORIGINAL key names (fused qkv, ls1/ls2, mlp1,
  float32 bicubic position-embedding resampling, last <IMG_CONTEXT> = motion token);
* the prompt has the released structure (frames, motion token, question, chat template);
* a clip scored alone or inside a batch gives the same greedy answer and scores;
* a scripted language model gives a well-formed answer: parsed score, expected score, reasoning.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from test_lmm_tiny import (LLM, VIT, build_vqathinker, script_language_model, scripted_level_probs, token_id,
                           vqathinker_config)

import vqametric
from vqametric.backends import build_scorer
from vqametric.backends.lmm.generation import generate
from vqametric.backends.lmm.prompts import OVERALL_TASK, THINK_ANSWER_FORMAT
from vqametric.backends.lmm.vqathinker import SYSTEM_MESSAGE, native_config
from vqametric.registry import get_card
from vqametric.sampling.plan import SamplingConfig

TILE = 56          # 4x4 patches -> 2x2 = 4 tokens per frame (the release: 560 -> 400)
FRAMES = 4         # SlowFast needs a multiple of 4 (the release: 12)


def card(frames=FRAMES, tile=TILE):
    return get_card("vqathinker-8b", sampling=SamplingConfig(num_segments=frames, fragment_grid=0, fragment_patch=0,
                                                             global_size=tile, interpolation="bicubic"))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return build_vqathinker(str(tmp_path_factory.mktemp("vqathinker")))


@pytest.fixture(scope="module")
def scorer(ckpt):
    return build_scorer(card(), device="cpu", checkpoint=ckpt, max_new_tokens=6)


def clip(seed, t=9, h=40, w=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, 3, h, w, generator=g) * 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# an independent forward pass over the original checkpoint keys


def _layer_norm(x, sd, name, eps=1e-6):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps)


def reference_logits(folder, tiles, input_ids, context_id):
    from safetensors.torch import load_file
    import glob
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from vqametric.backends.lmm.slowfast import SlowFastMotion, config_from_state_dict

    sd = {}
    for f in sorted(glob.glob(f"{folder}/*.safetensors")):
        sd.update({k: (v.float() if v.is_floating_point() else v) for k, v in load_file(f).items()})
    c, heads, p = VIT["hidden"], VIT["heads"], VIT["patch"]
    t = tiles.shape[0]
    # InternViT: patch conv + class token + position embedding resampled (float32 bicubic) to the grid
    x = F.conv2d(tiles, sd["vision_model.embeddings.patch_embedding.weight"],
                 sd["vision_model.embeddings.patch_embedding.bias"], stride=p)
    g = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["vision_model.embeddings.class_embedding"].expand(t, 1, c), x], 1)
    pos = sd["vision_model.embeddings.position_embedding"]
    src = int(math.isqrt(pos.shape[1] - 1))
    patch_pos = F.interpolate(pos[:, 1:].reshape(1, src, src, c).permute(0, 3, 1, 2), size=(g, g), mode="bicubic",
                              align_corners=False).reshape(1, c, g * g).permute(0, 2, 1)
    x = x + torch.cat([pos[:, :1], patch_pos], 1)
    for i in range(VIT["layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        h = _layer_norm(x, sd, pre + "norm1")
        qkv = (h @ sd[pre + "attn.qkv.weight"].T + sd[pre + "attn.qkv.bias"]).reshape(t, -1, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = torch.softmax((q * (c // heads) ** -0.5) @ k.transpose(-2, -1), -1) @ v
        a = a.transpose(1, 2).reshape(t, -1, c) @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"]
        x = x + a * sd[pre + "ls1"]
        h = _layer_norm(x, sd, pre + "norm2")
        h = F.gelu(h @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"])
        x = x + (h @ sd[pre + "mlp.fc2.weight"].T + sd[pre + "mlp.fc2.bias"]) * sd[pre + "ls2"]
    # drop the class token, 2x2 pixel shuffle (channels of each 2x2 block concatenated), mlp1
    x = x[:, 1:].reshape(t, g, g, c)
    x = x.reshape(t, g, g // 2, 2 * c).permute(0, 2, 1, 3).reshape(t, g // 2, g // 2, 4 * c).permute(0, 2, 1, 3)
    x = x.reshape(t, -1, 4 * c)
    x = _layer_norm(x, sd, "mlp1.0", eps=1e-5)
    vis = F.gelu(x @ sd["mlp1.1.weight"].T + sd["mlp1.1.bias"]) @ sd["mlp1.3.weight"].T + sd["mlp1.3.bias"]
    # motion token
    sf_sd = {k[len("slowfast_model."):]: v for k, v in sd.items() if k.startswith("slowfast_model.")}
    sf = SlowFastMotion(config_from_state_dict({k: list(v.shape) for k, v in sf_sd.items()})).eval()
    sf.load_state_dict(sf_sd)
    with torch.no_grad():
        feat = sf(tiles.unsqueeze(0).permute(0, 2, 1, 3, 4))
    m = _layer_norm(feat, sd, "motion_mlp.0", eps=1e-5)
    motion = F.gelu(m @ sd["motion_mlp.1.weight"].T + sd["motion_mlp.1.bias"]) @ sd["motion_mlp.3.weight"].T \
        + sd["motion_mlp.3.bias"]
    # the language model exactly as the original code builds it: Qwen2ForCausalLM under "language_model."
    llm = {k: v for k, v in vqathinker_config()["llm_config"].items()
           if k not in ("architectures", "_name_or_path", "torch_dtype", "attn_implementation", "use_bfloat16",
                        "model_type")}
    lm = Qwen2ForCausalLM(Qwen2Config(**llm)).eval()
    lm.load_state_dict({k[len("language_model."):]: v for k, v in sd.items() if k.startswith("language_model.")},
                       strict=False)
    with torch.no_grad():
        emb = lm.get_input_embeddings()(input_ids).clone()
        pos_ctx = (input_ids[0] == context_id).nonzero().squeeze(1)
        emb[0, pos_ctx[:-1]] = vis.reshape(-1, LLM["hidden"])
        emb[0, pos_ctx[-1]] = motion[0]
        return lm(inputs_embeds=emb).logits


def test_native_mapping_matches_original_architecture(ckpt, scorer):
    a = scorer.adapter
    prepared, _ = scorer.prepare(clip(0))
    prompt = a.prompt(prepared, scorer.question)
    inputs = a.batch_inputs([prepared], [prompt])
    with torch.no_grad():
        ours = a.model(**inputs).logits
    ids = a.tokenize([prompt])["input_ids"]
    ref = reference_logits(ckpt, prepared.tensors["tiles"].float(), ids, a.context_id)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=2e-4, rtol=1e-4), (ours - ref).abs().max()


def test_prompt_structure(scorer):
    a = scorer.adapter
    prepared, ctx = scorer.prepare(clip(1))
    assert prepared.tensors["tiles"].shape == (FRAMES, 3, TILE, TILE)
    assert ctx["plan"].frame_indices == tuple(vqametric.sampling.segment_midpoints(9, FRAMES))
    prompt = a.prompt(prepared, scorer.question)
    frame = "<img>" + "<IMG_CONTEXT>" * 4 + "</img>"
    user = ("Now you will receive a video:" + "".join(f"Frame{i}: {frame}" for i in range(1, FRAMES + 1))
            + "Motion Feature: <img><IMG_CONTEXT></img>" + OVERALL_TASK + THINK_ANSWER_FORMAT)
    assert prompt == (f"<|im_start|>system\n{SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                      "<|im_start|>assistant\n")
    assert "excellent quality.First output the thinking process" in prompt   # no space: as released
    ids = a.tokenize([prompt])["input_ids"][0]
    assert int((ids == a.context_id).sum()) == FRAMES * 4 + 1
    assert a.stop_ids[0] == token_id("<|im_end|>")


def test_released_geometry_560px_12_frames(ckpt):
    native = native_config(vqathinker_config(), 560)
    assert native.image_seq_length == 400
    a = build_scorer(card(frames=12, tile=560), device="cpu", checkpoint=ckpt).adapter
    assert a.tokens_per_frame == 400
    assert a.model.model.vision_tower.embeddings.position_embeddings.shape[1] == 40 * 40 + 1
    from vqametric.backends.lmm.base import PreparedClip
    prompt = a.prompt(PreparedClip({}, {"num_frames": 12}), "Q")
    assert prompt.count("<IMG_CONTEXT>") == 12 * 400 + 1
    assert prompt.count("Frame") == 12 and "Frame12: <img>" in prompt


def test_batch_equals_alone(scorer):
    a = scorer.adapter
    clips = [scorer.prepare(clip(s, t=t))[0] for s, t in ((2, 9), (3, 30), (4, 5))]
    prompts = [a.prompt(c, scorer.question) for c in clips]

    def run(idx):
        inputs = a.batch_inputs([clips[i] for i in idx], [prompts[i] for i in idx])
        return generate(a.model, a.tokenizer, inputs, options=scorer.options, stop_ids=a.stop_ids,
                        level_ids=a.level_ids)

    together = run([0, 1, 2])
    for i in range(3):
        (alone,) = run([i])
        assert alone.token_ids == together[i].token_ids
        assert alone.text == together[i].text
        assert torch.allclose(alone.level_logprobs, together[i].level_logprobs, atol=1e-4)
    s_batch, r_batch = scorer.score([clip(2), clip(3, t=30)])
    s_alone, r_alone = scorer.score([clip(3, t=30)])
    assert r_batch[1].raw_answer == r_alone[0].raw_answer
    assert torch.allclose(s_batch[1:], s_alone, atol=1e-3, equal_nan=True)


def test_scripted_answer_parsed_and_expected(ckpt):
    sc = build_scorer(card(), device="cpu", checkpoint=ckpt, max_new_tokens=16)
    script_language_model(sc.adapter.model)
    _, (r,) = sc.score([clip(5)])
    assert r.parse_ok
    assert r.raw_answer == "<think>sharp</think><answer>4.25</answer>"
    assert r.text == "sharp" and r.score == pytest.approx(4.25)
    gen = r.sampling["generation"]
    probs = scripted_level_probs(sc.adapter.model)
    assert gen["level_probs"] == pytest.approx(probs, abs=1e-5)
    e = sum(p * d for p, d in zip(probs, range(1, 6))) / sum(probs)
    assert 1 < e < 4  # a real spread: "3" is a strong second choice
    assert gen["expected_score"] == pytest.approx(4.25 + e - 4, abs=1e-5)
    sc.options.scoring = "expected"
    s2, (r2,) = sc.score([clip(5)])
    assert r2.score == pytest.approx(4.25 + e - 4, abs=1e-5) and float(s2[0]) == pytest.approx(r2.score)


def test_frame_count_must_suit_the_motion_branch(ckpt):
    with pytest.raises(vqametric.SamplingError, match="multiple of 4"):
        build_scorer(card(frames=6), device="cpu", checkpoint=ckpt)


def test_batch_scores_equal_alone(ckpt):
    sc = build_scorer(card(), device="cpu", checkpoint=ckpt, max_new_tokens=16, scoring="expected")
    script_language_model(sc.adapter.model, keep_layers=True)
    clips = [clip(11), clip(12, t=30), clip(13, t=5)]
    together, rs = sc.score(clips)
    assert all(r.parse_ok and r.sampling["generation"]["parsed_score"] == 4.25 for r in rs)
    assert float(together.max() - together.min()) > 2e-4          # the scores depend on the clip
    for i, c in enumerate(clips):
        alone, (r,) = sc.score([c])
        assert r.raw_answer == rs[i].raw_answer
        assert abs(float(alone[0]) - float(together[i])) < 1e-3
