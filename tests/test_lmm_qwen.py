"""Qwen2.5-VL / Qwen3-VL adapters on tiny checkpoints (native transformers classes, our preprocessing).

* Qwen2.5-VL in the legacy key layout (``visual.*``, ``model.layers.*``) loads and computes what
  the in-memory model computes;
* ``mm_token_type_ids`` are passed and change the result: without them transformers 5 silently
  uses 1-D positions for the video tokens;
* left-padded batches give each clip the answer it gets alone;
* Qwen3-VL prompts carry one ``<t seconds>`` group per temporal patch;
* sampling several answers is reproducible with a seed and averages the parsed scores.
"""
from __future__ import annotations

import pytest
import torch

from test_lmm_tiny import build_qwen, script_language_model, token_id

from vqametric.backends import build_scorer
from vqametric.backends.lmm.generation import generate
from vqametric.registry import get_card
from vqametric.sampling.plan import SamplingConfig

FRAMES = 4


def card(name="visualquality-r1-7b", **kw):
    return get_card(name, sampling=SamplingConfig(num_segments=FRAMES, fragment_grid=0, fragment_patch=0,
                                                  global_size=56, interpolation="bicubic"), **kw)


def clip(seed, t=8, h=40, w=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, 3, h, w, generator=g) * 255).to(torch.uint8)


@pytest.fixture(scope="module")
def q25(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("qwen25"))
    ref = build_qwen(folder, "2.5")
    sc = build_scorer(card(), device="cpu", checkpoint=folder, max_new_tokens=5)
    return folder, ref, sc


@pytest.fixture(scope="module")
def q3(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("qwen3"))
    ref = build_qwen(folder, "3")
    sc = build_scorer(card(default_runtime="qwen3-vl"), device="cpu", checkpoint=folder, max_new_tokens=5)
    return folder, ref, sc


def _inputs(sc, clips, fps=None):
    a = sc.adapter
    prepared = [sc.prepare(c, fps)[0] for c in clips]
    prompts = [a.prompt(p, sc.question) for p in prepared]
    return prepared, prompts, a.batch_inputs(prepared, prompts)


def test_qwen25_legacy_layout_loads_and_matches(q25):
    _, ref, sc = q25
    assert sc.runtime == "qwen2.5-vl"
    _, prompts, inputs = _inputs(sc, [clip(0)])
    with torch.no_grad():
        ours = sc.adapter.model(**inputs).logits
        theirs = ref(**inputs).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert prompts[0].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                 "Video 1: <|vision_start|><|video_pad|>")
    assert "with only one score in <answer> </answer> tags." in prompts[0]


def test_mm_token_type_ids_give_3d_positions(q25):
    _, _, sc = q25
    prepared, _, inputs = _inputs(sc, [clip(1)], fps=2.0)   # temporal patches 2 s apart
    types = inputs["mm_token_type_ids"]
    grid = prepared[0].tensors["video_grid_thw"][0]
    n_video = int(grid.prod()) // 4
    assert int((types == 2).sum()) == n_video == int((inputs["input_ids"] == token_id("<|video_pad|>")).sum())
    assert pytest.approx(float(inputs["second_per_grid_ts"][0]), rel=1e-6) == prepared[0].meta["second_per_grid"]
    m = sc.adapter.model
    pos, _ = m.model.get_rope_index(inputs["input_ids"], mm_token_type_ids=types,
                                    video_grid_thw=inputs["video_grid_thw"],
                                    second_per_grid_ts=inputs["second_per_grid_ts"],
                                    attention_mask=inputs["attention_mask"])
    vid = types[0] == 2
    # height and width positions of the video tokens follow the patch grid, not the token order
    assert len(set(pos[1, 0, vid].tolist())) == int(grid[1]) // 2
    assert len(set(pos[2, 0, vid].tolist())) == int(grid[2]) // 2
    assert len(set(pos[0, 0, vid].tolist())) == int(grid[0])
    f = [i / 2.0 for i in (0, 2, 4, 5)]  # segment midpoints of 8 frames at 2 fps
    assert prepared[0].meta["second_per_grid"] == pytest.approx((f[2] + f[3]) / 2 - (f[0] + f[1]) / 2)
    with torch.no_grad():
        with_types = m(**inputs).logits
        m.model.rope_deltas = None
        without = m(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"}).logits
        m.model.rope_deltas = None
    assert not torch.allclose(with_types, without, atol=1e-4)  # the silent 1-D fallback is real


@pytest.mark.parametrize("which", ["q25", "q3"])
def test_left_padded_batch_equals_alone(which, request):
    _, _, sc = request.getfixturevalue(which)
    a = sc.adapter
    clips = [clip(2, h=40, w=64), clip(3, h=60, w=60), clip(4, t=5, h=30, w=120)]
    prepared = [sc.prepare(c)[0] for c in clips]
    prompts = [a.prompt(p, sc.question) for p in prepared]
    lengths = {len(a.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts}
    assert len(lengths) > 1  # the batch really is padded

    def run(idx):
        inputs = a.batch_inputs([prepared[i] for i in idx], [prompts[i] for i in idx])
        return generate(a.model, a.tokenizer, inputs, options=sc.options, stop_ids=a.stop_ids,
                        level_ids=a.level_ids)

    together = run([0, 1, 2])
    for i in range(3):
        (alone,) = run([i])
        assert alone.token_ids == together[i].token_ids
        assert torch.allclose(alone.level_logprobs, together[i].level_logprobs, atol=1e-4)


def test_qwen3_prompt_has_timestamps(q3):
    _, ref, sc = q3
    assert sc.runtime == "qwen3-vl"
    prepared, prompts, inputs = _inputs(sc, [clip(5, t=16)])
    p = prompts[0]
    assert not p.startswith("<|im_start|>system")
    groups = prepared[0].meta["group_times"]
    assert len(groups) == FRAMES // 2 and groups[0] < groups[1]
    for t in groups:
        assert f"<{t:.1f} seconds><|vision_start|>" in p
    assert p.count("<|vision_start|>") == FRAMES // 2
    with torch.no_grad():
        assert torch.allclose(sc.adapter.model(**inputs).logits, ref(**inputs).logits, atol=1e-5)


def test_scripted_answer_and_sampling(tmp_path):
    folder = str(tmp_path / "q25s")
    build_qwen(folder, "2.5", seed=1)
    sc = build_scorer(card(), device="cpu", checkpoint=folder, max_new_tokens=16)
    script_language_model(sc.adapter.model)
    _, (r,) = sc.score([clip(6)])
    assert r.parse_ok and r.score == pytest.approx(4.25) and r.text == "sharp"
    sc.options.num_samples, sc.options.seed = 4, 123
    s1, (r1,) = sc.score([clip(6)])
    s2, (r2,) = sc.score([clip(6)])
    g1 = r1.sampling["generation"]
    assert g1["answers"] == 4 and len(g1["sample_scores"]) == 4
    assert g1["sample_scores"] == r2.sampling["generation"]["sample_scores"]  # seeded
    parsed = [s for s in g1["sample_scores"] if s is not None]
    if parsed:
        assert r1.score == pytest.approx(sum(parsed) / len(parsed), abs=1e-5)
        assert float(s1[0]) == pytest.approx(r1.score)
    else:
        assert not r1.parse_ok and torch.isnan(s1[0])


def test_batch_scores_equal_alone(tmp_path):
    """Parsed answers whose expected scores depend on the clip: batch and alone agree within 1e-3."""
    folder = str(tmp_path / "q25b")
    build_qwen(folder, "2.5", seed=3)
    sc = build_scorer(card(), device="cpu", checkpoint=folder, max_new_tokens=16, scoring="expected")
    script_language_model(sc.adapter.model, keep_layers=True)
    clips = [clip(7), clip(8, h=60, w=60), clip(9, t=5, h=30, w=120)]
    together, rs = sc.score(clips)
    assert all(r.parse_ok and r.sampling["generation"]["parsed_score"] == 4.25 for r in rs)
    assert float(together.max() - together.min()) > 2e-3          # the scores really depend on the clip
    for i, c in enumerate(clips):
        alone, (r,) = sc.score([c])
        assert r.raw_answer == rs[i].raw_answer
        assert abs(float(alone[0]) - float(together[i])) < 1e-3
