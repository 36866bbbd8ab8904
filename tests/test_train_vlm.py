"""Training adapters on tiny random VLMs: the GRPO policy and the ASO level scorer really learn.

* ``QwenVLPolicy`` samples with the inference adapter's inputs and scores the same rollouts with
  one forward over prompt + completion: its log-probabilities equal those of the sampling step
  (left-padded batches, Qwen2.5-VL and Qwen3-VL) and of each row alone; the perturbed prompt keeps
  the layout; LoRA and full weights save as safetensors that load back;
* a toy GRPO run: a tiny randomly initialised Qwen2.5-VL (``test_lmm_tiny.build_qwen``) sees
  synthetic clips whose quality label is their tint (red = 1 ... blue = 5), answers the inference
  prompt, and after a format warm-up GRPO with the real rewards raises the mean total reward;
* a toy ASO run through ``QwenVLLevelScorer``: the expected dimension scores move toward the labels
  while the KL to the reference stays within the closed-form target's;
* the VQAThinker (InternVL + motion token) layout through the same classes.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from test_lmm_tiny import build_qwen, build_vqathinker, token_id

from vqametric.backends import build_scorer
from vqametric.io.frames import RGBFrames, YUV420Frames
from vqametric.registry import get_card
from vqametric.sampling.plan import SamplingConfig
from vqametric.train.reasoning import aso as A
from vqametric.train.reasoning import grpo as G
from vqametric.train.reasoning import rewards as R
from vqametric.train.fast.distortions import BLACK
from vqametric.train.reasoning.policies import (LevelSample, QwenVLLevelScorer, QwenVLPolicy, VQAThinkerLevelScorer,
                                      VQAThinkerPolicy, context_level, iter_batches, select_frames)

SAMPLING = SamplingConfig(num_segments=4, fragment_grid=0, fragment_patch=0, global_size=56, interpolation="bicubic")
MOS = {1: 1.35, 2: 2.15, 3: 2.95, 4: 3.75, 5: 4.55}
SCORES = [f"{x:.2f}" for x in np.arange(1.25, 5.0, 0.5)]          # 1.25, 1.75, ..., 4.75
has_peft = importlib.util.find_spec("peft") is not None


@pytest.fixture(scope="module")
def q25(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("q25-train"))
    build_qwen(folder, "2.5")
    return folder


@pytest.fixture(scope="module")
def q3(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("q3-train"))
    build_qwen(folder, "3")
    return folder


def adapter(folder, card="visualquality-r1-7b", sampling=SAMPLING, **kw):
    """A fresh inference adapter (training changes its model in place)."""
    return build_scorer(get_card(card, sampling=sampling, **kw), device="cpu", checkpoint=folder).adapter


def tint_clip(level, seed=0, t=8, h=40, w=64):
    """A clip whose quality label is its tint: red (level 1) to blue (level 5), a little noise."""
    g = torch.Generator().manual_seed(1000 * seed + level)
    mix = (level - 1) / 4
    base = torch.tensor([200 * (1 - mix) + 20, 60.0, 200 * mix + 20]).view(1, 3, 1, 1)
    return (base.expand(t, 3, h, w) + 10 * torch.randn(t, 3, h, w, generator=g)).clamp(0, 255).to(torch.uint8)


def noise_clip(seed, t=8, h=40, w=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, 3, h, w, generator=g) * 255).to(torch.uint8)


def record_generation_logits(policy):
    """Wrap the model's generate() to keep the raw logits of every sampling step."""
    original, seen = policy.base.generate, {}

    def generate(**kw):
        cfg = kw["generation_config"]
        cfg.return_dict_in_generate, cfg.output_logits = True, True
        out = original(**kw)
        seen["logits"] = torch.stack(out.logits, 1)
        return out.sequences

    policy.base.generate = generate
    return seen


# ----------------------------------------------------------------------------------------------
# the policy
@pytest.mark.parametrize("which", ["q25", "q3"])
def test_policy_log_probs_are_the_sampling_distribution(which, request, one_thread):
    folder = request.getfixturevalue(which)
    card = "visualquality-r1-7b" if which == "q25" else "lmm-dimensions"
    torch.manual_seed(0)
    policy = QwenVLPolicy(adapter(folder, card), max_new_tokens=8)
    assert isinstance(policy, G.Policy)
    prompts = [policy.prompt(noise_clip(1)), policy.prompt(noise_clip(2, h=60, w=60)),
               policy.prompt(noise_clip(3, t=5, h=30, w=120))]
    tok = policy.adapter.tokenizer
    assert len({len(tok(p.text, add_special_tokens=False).input_ids) for p in prompts}) > 1   # left padding
    # exactly the prompt inference builds
    scorer = build_scorer(get_card(card, sampling=SAMPLING, **({} if which == "q25" else
                                                                {"default_runtime": "qwen3-vl"})),
                          device="cpu", checkpoint=folder, prompt="overall")
    assert prompts[0].text == scorer.adapter.prompt(scorer.prepare(noise_clip(1))[0], scorer.question)
    seen = record_generation_logits(policy)
    ro = policy.generate(prompts, 2, temperature=0.7)
    n = ro.completion_ids.shape[0]
    assert n == 6 and ro.num_prompts == 3 and len(ro.texts) == 6
    assert not torch.isin(ro.completion_ids, torch.tensor(policy.suppressed)).any()    # no placeholder sampled
    lp = policy.log_probs(ro, torch.arange(n))
    assert lp.requires_grad
    m = ro.completion_mask.bool()
    # the log-probabilities of the sampling step (plain sampling at temperature 0.7, placeholders excluded)
    sampled = seen["logits"].index_fill(-1, torch.tensor(policy.suppressed), float("-inf"))
    torch.testing.assert_close(lp.detach()[m], G.token_log_probs(sampled, ro.completion_ids, 0.7)[m],
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(policy.ref_log_probs(ro, torch.arange(n)), lp.detach())    # reference = start
    for row in (1, 4):                                        # a row scored alone gives the same numbers
        alone = G.Rollouts(ro.completion_ids[row:row + 1], ro.completion_mask[row:row + 1], ro.texts[row:row + 1], 1,
                           {"prompts": [ro.state["prompts"][row]], "temperature": 0.7})
        got = policy.log_probs(alone, torch.arange(1)).detach()[0]
        torch.testing.assert_close(got[m[row]], lp.detach()[row][m[row]], atol=1e-5, rtol=0)
    # only the language model trains; the vision tower stays frozen
    names = {n for n, p in policy.base.named_parameters() if p.requires_grad}
    assert names and all("language_model" in n or n.startswith("lm_head") for n in names)
    assert not any(p.requires_grad for p in policy.base.model.visual.parameters())


def test_checkpoint_generation_defaults_do_not_leak(q25, one_thread):
    policy = QwenVLPolicy(adapter(q25), max_new_tokens=4)
    policy.base.generation_config.top_k, policy.base.generation_config.repetition_penalty = 1, 5.0
    cfg = policy._generation_config(1.0)
    assert (cfg.do_sample, cfg.top_k, cfg.top_p, cfg.repetition_penalty, cfg.temperature) == (True, 0, 1.0, 1.0, 1.0)
    torch.manual_seed(0)
    ro = policy.generate([policy.prompt(noise_clip(5))], 8)
    assert len(set(ro.texts)) > 1                             # sampled: not collapsed to the top-1 token
    assert policy.base.generation_config.top_k == 1           # the model's own config is restored


def test_perturbed_prompt_keeps_layout_and_blacks_frames(q25):
    a = adapter(q25)
    policy = QwenVLPolicy(a, max_new_tokens=4)
    p = policy.prompt(noise_clip(7))
    assert p.frame_indices == tuple(p.plan.frame_indices)
    rng = np.random.default_rng(3)
    from vqametric.train.reasoning.policies import perturb_prompt
    black = perturb_prompt(a, p, rng, "black")
    assert black.text == p.text                               # same prompt, token for token
    assert black.clip.tensors["video_grid_thw"].tolist() == p.clip.tensors["video_grid_thw"].tolist()
    assert black.clip.meta == p.clip.meta                     # same timing
    k = [i for i, f in enumerate(black.frame_indices) if f == BLACK]
    assert 1 <= len(k) <= 3 and all(int(black.frames.data[i].max()) == 0 for i in k)
    rev = perturb_prompt(a, p, np.random.default_rng(0), "reverse")
    assert rev.frame_indices == p.frame_indices[::-1]
    assert torch.equal(rev.frames.data, p.frames.data.flip(0))
    assert not torch.equal(rev.clip.tensors["pixel_values_videos"], p.clip.tensors["pixel_values_videos"])
    # the trainer's hook draws one of the six perturbations per call
    kinds = {policy.perturb(p, rng).frame_indices for _ in range(12)}
    assert len(kinds) > 3


def test_select_frames_black_in_rgb_and_yuv():
    rgb = RGBFrames(torch.full((3, 4, 6, 3), 200, dtype=torch.uint8))
    out = select_frames(rgb, [2, BLACK, 0])
    assert out.data[1].max() == 0 and out.data[0].min() == 200
    y = torch.full((2, 4, 6), 180, dtype=torch.int16)
    uv = torch.full((2, 2, 3), 90, dtype=torch.int16)
    yuv = YUV420Frames(y, uv, uv.clone(), bit_depth=10, matrix="bt709", full_range=False)
    out = select_frames(yuv, [BLACK, 1])
    assert int(out.y[0].max()) == 64 and int(out.u[0].max()) == 512 and int(out.y[1].min()) == 180


def test_iter_batches_covers_every_item_each_epoch():
    it = iter_batches(5, 2, np.random.default_rng(0))
    first = [next(it) for _ in range(5)]                       # 10 indices: two epochs of 5
    assert all(len(b) == 2 for b in first)
    flat = [i for b in first for i in b]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4] and sorted(flat[5:]) == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------
# the toy GRPO run
def warm_up(policy, prompts, rng, steps=100, batch=16, tau=1.0, lr=1e-2):
    """Supervised warm-up of the answer format with scores only loosely tied to the label (drawn
    with weights exp(-|s - mos| / tau)): the format is learned, the scores are not yet."""
    values = np.array([float(s) for s in SCORES])
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        levels = rng.integers(1, 6, size=batch)
        texts = []
        for q in levels:
            w = np.exp(-np.abs(values - MOS[int(q)]) / tau)
            word = str(rng.choice(["sharp", "blurry", "smooth"]))
            texts.append(f"<think>{word}</think><answer>{rng.choice(SCORES, p=w / w.sum())}</answer>")
        loss = policy.supervised_loss([prompts[int(q)] for q in levels], texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def test_toy_grpo_run_raises_the_reward(q25, one_thread):
    """A tiny random Qwen2.5-VL (hidden 32, two layers, a one-block vision tower) is asked the
    inference question about clips whose label is their tint. After a 100-step format warm-up,
    60 GRPO steps with the release's rewards and defaults (ranking, regression, format, temporal;
    G = 4, temperature 1, beta 0.04; perturbed copies re-prepared from the kept frames) raise the
    mean total reward and the regression reward, with the KL to the reference bounded."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = QwenVLPolicy(adapter(q25), max_new_tokens=12)
    prompts = {q: policy.prompt(tint_clip(q)) for q in MOS}
    warm_up(policy, prompts, rng)
    policy.reset_reference()                                  # the reference is the warmed-up model
    trainer = G.GRPOTrainer(policy, R.VQAThinkerRewards(), torch.optim.Adam(policy.parameters(), lr=3e-3, eps=1e-3),
                            G.GRPOConfig(), perturb=policy.perturb)
    assert (trainer.config.num_generations, trainer.config.temperature, trainer.config.beta) == (4, 1.0, 0.04)
    assert R.VQAThinkerRewards().config.sigma == 0.5 and trainer.config.temporal
    batch = [{"prompt": prompts[q], "mos": MOS[q]} for q in (1, 2, 3, 4, 5) * 2]
    stats = [trainer.step(batch).stats for _ in range(60)]
    total = [s["reward/total"] for s in stats]
    regression = [s["reward/regression"] for s in stats]
    first, last = np.mean(total[:10]), np.mean(total[-10:])
    print(f"GRPO: total {first:.3f} -> {last:.3f}, regression {np.mean(regression[:10]):.3f} -> "
          f"{np.mean(regression[-10:]):.3f}, format {np.mean([s['reward/format'] for s in stats[-10:]]):.3f}, "
          f"max KL {max(s['kl'] for s in stats):.3f}")
    # measured (seed 0, one thread): total 2.53 -> 3.01, regression 0.50 -> 0.72, format 0.99, max KL 0.36
    assert last > first + 0.2, (first, last)
    assert np.mean(regression[-10:]) > np.mean(regression[:10]) + 0.08
    assert np.mean([s["reward/format"] for s in stats[-10:]]) > 0.9
    assert max(s["kl"] for s in stats) < 1.0
    assert "reward/temporal" in stats[0]


# ----------------------------------------------------------------------------------------------
# the level scorer and the toy ASO run
LABELS = {1: [1, 2, 1, 1, 2], 2: [2, 3, 2, 2, 1], 3: [3, 3, 3, 4, 3], 4: [4, 4, 5, 4, 4], 5: [5, 4, 5, 5, 5]}


def aso_batch(scorer):
    batch = []
    for q, lab in LABELS.items():
        labels = [float(x) for x in lab]
        if q == 3:
            labels[1] = float("nan")                          # a dimension without a rating
        batch.append(scorer.sample(tint_clip(q), labels, float(np.mean(lab)),
                                   rationale="sharp smooth" if q % 2 else None))
    return batch


def test_level_logits_sit_at_the_score_positions(q25, one_thread):
    scorer = QwenVLLevelScorer(adapter(q25, "lmm-dimensions"))
    assert isinstance(scorer, A.LevelScorer)
    batch = aso_batch(scorer)
    assert scorer.answer_text(batch[1])[0].startswith("<think>\n</think>\n<answer>\nMotion Quality: 2\n")
    text, digits = scorer.answer_text(batch[2])                # Motion Amplitude unrated: the rounded MOS
    assert text.startswith("<think>\nsharp smooth\n</think>\n<answer>\nMotion Quality: 3\nMotion Amplitude: 3\n")
    assert text.endswith("Overall Quality: 3.20\n</answer>") and [text[d] for d in digits] == list("33343")
    assert context_level(float("nan"), 3.2) == 3 and context_level(2.5, 1.0) == 3 and context_level(7.0, 1.0) == 5
    logits = scorer.level_logits(batch)
    assert logits.shape == (5, 5, 5) and logits.requires_grad
    # the same numbers as a plain forward over one prompt + answer, at the token before each digit
    tok = scorer.adapter.tokenizer
    s = batch[1]
    text, digits = scorer.answer_text(s)
    ids = tok(s.prompt.text + text, add_special_tokens=False, return_offsets_mapping=True)
    inputs = scorer.adapter.batch_inputs([s.prompt.clip], [s.prompt.text + text])
    with torch.no_grad():
        full = scorer.base(**inputs).logits[0]
    p_len = len(tok(s.prompt.text, add_special_tokens=False).input_ids)
    for d, at in enumerate(digits):
        i = [k for k, (a, b) in enumerate(ids["offset_mapping"]) if a == len(s.prompt.text) + at][0]
        assert i > p_len
        want = full[i - 1, [token_id(str(v)) for v in range(1, 6)]]
        torch.testing.assert_close(logits[1, d].detach(), want, atol=1e-4, rtol=0)
    nll = scorer.rationale_nll(batch)
    assert nll.requires_grad and 0 < float(nll.detach()) < 10


def test_toy_aso_run_moves_expected_scores_toward_labels(q25, one_thread):
    """ASO (beta 0.5) through QwenVLLevelScorer on tinted clips with five dimension labels each: the
    expected scores of a random tiny Qwen2.5-VL (reference near uniform, expected score about 3)
    move to the labels, as far as the closed-form target itself; the KL to the reference stays
    within the target's KL to the reference."""
    torch.manual_seed(0)
    scorer = QwenVLLevelScorer(adapter(q25, "lmm-dimensions"))
    batch = aso_batch(scorer)
    labels = torch.tensor([list(s.labels) for s in batch])
    trainer = A.ASOTrainer(scorer, torch.optim.Adam(scorer.parameters(), lr=1e-2), A.ASOConfig(beta=0.5))
    first = trainer.step(batch, labels)
    for _ in range(79):
        last = trainer.step(batch, labels)
    mask = ~torch.isnan(labels)
    with torch.no_grad():
        target, _, _ = trainer.targets(batch, labels)
        target_mae = float((((target * torch.arange(1.0, 6.0)).sum(-1) - torch.nan_to_num(labels)).abs()[mask]).mean())
        after = A.expected_score(scorer.policy_level_logits(batch))
    mae = float((after - torch.nan_to_num(labels)).abs()[mask].mean())
    print(f"ASO: MAE {first['aso/mae']:.3f} -> {mae:.3f} (target {target_mae:.3f}), KL(policy || ref) "
          f"{last['aso/kl_policy_ref']:.3f}, KL(target || ref) {last['aso/kl_target_ref']:.3f}")
    # measured (seed 0, one thread): MAE 1.21 -> 0.08 (target 0.07), KL(policy || ref) 0.96, KL(target || ref) 0.97
    assert mae < 0.5 * first["aso/mae"], (first, mae)
    assert mae < target_mae + 0.1
    assert last["aso/kl_policy_ref"] <= 1.1 * last["aso/kl_target_ref"] + 0.05, last
    assert last["aso/loss"] < 0.5 * first["aso/loss"]


# ----------------------------------------------------------------------------------------------
# saving, LoRA
def _logits(a, prompt):
    with torch.no_grad():
        return a.model(**a.batch_inputs([prompt.clip], [prompt.text])).logits


def test_full_weights_save_and_load_for_inference(q25, tmp_path, one_thread):
    torch.manual_seed(0)
    policy = QwenVLPolicy(adapter(q25), max_new_tokens=4)
    p = policy.prompt(noise_clip(9))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(3):
        loss = policy.supervised_loss([p], ["<think>sharp</think><answer>4.25</answer>"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    files = policy.save(tmp_path / "model")
    assert "config.json" in files and "tokenizer.json" in files and any(f.endswith(".safetensors") for f in files)
    loaded = adapter(str(tmp_path / "model"))
    trained = _logits(policy.adapter, p)
    torch.testing.assert_close(_logits(loaded, p), trained, atol=1e-5, rtol=0)
    assert not torch.allclose(_logits(adapter(q25), p), trained, atol=1e-3)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        policy.save(tmp_path / "x", "adapter")


@pytest.mark.skipif(not has_peft, reason="LoRA needs peft")
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")   # inside peft
def test_lora_policy_trains_only_the_adapter_and_saves(q25, tmp_path, one_thread):
    from peft import PeftModel

    torch.manual_seed(0)
    policy = QwenVLPolicy(adapter(q25), max_new_tokens=6, lora={"r": 4, "alpha": 8})
    names = [n for n, p in policy.base.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    assert policy.ref_model is None
    p = policy.prompt(noise_clip(11))
    ro = policy.generate([p], 3)
    rows = torch.arange(3)
    torch.testing.assert_close(policy.log_probs(ro, rows).detach(), policy.ref_log_probs(ro, rows))
    opt = torch.optim.Adam(policy.parameters(), lr=2e-2)
    for _ in range(3):
        loss = policy.supervised_loss([p], ["<think>sharp</think><answer>4.25</answer>"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    lp, ref = policy.log_probs(ro, torch.arange(3)).detach(), policy.ref_log_probs(ro, torch.arange(3))
    assert not torch.allclose(lp, ref, atol=1e-4)             # the adapter moved; the reference did not
    trained = _logits(policy.adapter, p)
    # the adapter in PEFT's layout, applied to a fresh copy of the checkpoint
    files = policy.save(tmp_path / "adapter")
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(files)
    fresh = adapter(q25)
    fresh.model = PeftModel.from_pretrained(fresh.model, str(tmp_path / "adapter"))
    torch.testing.assert_close(_logits(fresh, p), trained, atol=1e-5, rtol=0)
    # merged full weights load as a plain checkpoint
    policy.save(tmp_path / "merged", "full")
    torch.testing.assert_close(_logits(adapter(str(tmp_path / "merged")), p), trained, atol=1e-5, rtol=0)
    # a new reference after a supervised stage: the merged model, with a fresh adapter
    policy.reset_reference()
    rows = torch.arange(3)
    torch.testing.assert_close(policy.log_probs(ro, rows).detach(), policy.ref_log_probs(ro, rows))
    torch.testing.assert_close(_logits(policy.adapter, p), trained, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------
# VQAThinker (InternVL + motion token)
@pytest.fixture(scope="module")
def vqt(tmp_path_factory):
    return build_vqathinker(str(tmp_path_factory.mktemp("vqt-train")))


VQT_SAMPLING = SamplingConfig(num_segments=4, fragment_grid=0, fragment_patch=0, global_size=28,
                              interpolation="bicubic")


def test_vqathinker_policy_and_level_scorer(vqt, tmp_path, one_thread):
    torch.manual_seed(0)
    a = adapter(vqt, "vqathinker-8b", VQT_SAMPLING)
    with pytest.raises(TypeError, match="qwen"):
        QwenVLPolicy(a)
    policy = VQAThinkerPolicy(a, max_new_tokens=6)
    prompts = [policy.prompt(noise_clip(1)), policy.prompt(noise_clip(2, t=9, h=60, w=60))]
    seen = record_generation_logits(policy)
    ro = policy.generate(prompts, 2, temperature=0.8)
    m = ro.completion_mask.bool()
    lp = policy.log_probs(ro, torch.arange(4))
    sampled = seen["logits"].float().index_fill(-1, torch.tensor(policy.suppressed), float("-inf"))
    torch.testing.assert_close(lp.detach()[m], G.token_log_probs(sampled, ro.completion_ids, 0.8)[m], atol=1e-4, rtol=0)
    torch.testing.assert_close(policy.ref_log_probs(ro, torch.arange(4)), lp.detach())
    loss = policy.supervised_loss(prompts, ["<think>sharp</think><answer>3.25</answer>"] * 2)
    loss.backward()
    assert policy.base.get_input_embeddings().weight.grad is not None      # token embeddings train too
    assert not any(p.requires_grad for p in a.motion.parameters())
    perturbed = policy.perturb(prompts[0], np.random.default_rng(0))
    assert perturbed.text == prompts[0].text
    # full weights go back into the original InternVL chat layout, which the adapter loads
    torch.optim.SGD(policy.parameters(), lr=0.5).step()
    policy.save(tmp_path / "vqt")
    loaded = adapter(str(tmp_path / "vqt"), "vqathinker-8b", VQT_SAMPLING)
    with torch.no_grad():
        x = a.batch_inputs([prompts[0].clip], [prompts[0].text])
        y = loaded.batch_inputs([prompts[0].clip], [prompts[0].text])
        torch.testing.assert_close(loaded.model(**y).logits, a.model(**x).logits, atol=1e-5, rtol=0)
    scorer = VQAThinkerLevelScorer(adapter(vqt, "vqathinker-8b", VQT_SAMPLING))
    batch = [LevelSample(scorer.prompt(noise_clip(3)), (1.0, 2.0, math.nan, 4.0, 5.0), 3.0, "sharp")]
    assert scorer.level_logits(batch).shape == (1, 5, 5)
    torch.testing.assert_close(scorer.reference_level_logits(batch), scorer.level_logits(batch).detach())
