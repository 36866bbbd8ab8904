"""The reasoning-mode scorer around the models: answers -> results, failures, retries, sampling,
expected scores, dimensions, the metric / functional / CLI entry points, and weight-loading safety.

Most tests use a stub adapter whose "model" replays scripted answers, so each rule is checked
exactly; the entry points and loading tests use a tiny real checkpoint.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from test_lmm_tiny import build_qwen, make_tokenizer, token_id

import vqametric
from vqametric.backends import build_scorer
from vqametric.backends.lmm import memory as mem_mod
from vqametric.backends.lmm import scorer as scorer_mod
from vqametric.backends.lmm.base import Adapter, PreparedClip, load_tokenizer
from vqametric.backends.lmm.generation import Generated
from vqametric.backends.lmm.memory import ModelTooLarge
from vqametric.backends.lmm.weights import HUB_PATTERNS, resolve_checkpoint
from vqametric.errors import WeightsNotFound
from vqametric.registry import get_card
from vqametric.sampling.plan import SamplingConfig

SMALL = SamplingConfig(num_segments=4, fragment_grid=0, fragment_patch=0, global_size=56, interpolation="bicubic")


class StubAdapter(Adapter):
    family = "stub"

    def __init__(self, folder):
        self.folder = folder
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.load_in_8bit = False
        self.tokenizer = load_tokenizer(folder)
        self._init_tokens()
        self.model = None

    def prepare(self, frames, plan, info):
        return PreparedClip({}, {"num_frames": frames.num_frames})

    def prompt(self, clip, question):
        return "p"

    def batch_inputs(self, clips, prompts):
        return {"rows": len(prompts)}


@pytest.fixture(scope="module")
def tok_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tok"))
    make_tokenizer(folder)
    return folder


def answer(tokenizer, text, probs_at=None):
    """A Generated answer for ``text``; ``probs_at``: {token index: level probabilities} (else uniform)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    lp = torch.full((len(ids), 5), math.log(0.2))
    for i, p in (probs_at or {}).items():
        lp[i] = torch.tensor(p).log()
    return Generated(token_ids=ids, text=tokenizer.decode(ids), level_logprobs=lp, stopped=True)


@pytest.fixture()
def replay(monkeypatch):
    """Queue of answer texts (or Generated) handed out by the patched ``generate``, in call order."""
    queue, calls = [], []

    def fake_generate(model, tokenizer, inputs, *, options, stop_ids, level_ids, num_return=1, do_sample=False,
                      temperature=None, seed=None):
        calls.append({"rows": inputs["rows"], "do_sample": do_sample, "temperature": temperature, "seed": seed})
        out = []
        for _ in range(inputs["rows"]):
            item = queue.pop(0)
            out.append(item if isinstance(item, Generated) else answer(tokenizer, item))
        return out

    monkeypatch.setattr(scorer_mod, "generate", fake_generate)
    return queue, calls


def stub_scorer(tok_folder, card_name="vqathinker-8b", **kw):
    card = get_card(card_name, sampling=SMALL)
    return build_scorer(card, adapter=StubAdapter(tok_folder), **kw)


def clip(t=8):
    return (torch.rand(t, 3, 32, 48) * 255).to(torch.uint8)


def test_well_formed_answer(tok_folder, replay):
    queue, calls = replay
    sc = stub_scorer(tok_folder)
    queue += ["<think>sharp</think><answer>4.25</answer>", "<answer>2</answer>"]
    scores, (a, b) = sc.score([clip(), clip()])
    assert calls == [{"rows": 2, "do_sample": False, "temperature": None, "seed": 0}]   # one batch, greedy
    assert scores.tolist() == [4.25, 2.0]
    assert a.parse_ok and a.score == 4.25 and a.text == "sharp"
    assert a.raw_answer == "<think>sharp</think><answer>4.25</answer>"
    assert a.model == "vqathinker-8b" and a.sampling["generation"]["family"] == "stub"
    assert set(a.timings) >= {"open", "decode", "preprocess", "inference", "total"}
    json.loads(a.to_json())


def test_parse_failure_is_reported_not_replaced(tok_folder, replay):
    queue, _ = replay
    sc = stub_scorer(tok_folder)
    queue += ["<think>sharp</think> I rate it 4", "<answer>3</answer>"]
    scores, (bad, good) = sc.score([clip(), clip()])
    assert math.isnan(scores[0]) and scores[1] == 3.0
    assert not bad.parse_ok and good.parse_ok
    assert bad.sampling["generation"]["failure"].startswith("no <answer> tag")
    assert bad.sampling["generation"]["parsed_score"] is None
    assert sc.stats["parse_failures"] == 1 and sc.stats["answer_failures"] == 1


def test_retry_by_sampling(tok_folder, replay):
    queue, calls = replay
    sc = stub_scorer(tok_folder, retries=2, retry_temperature=0.7)
    queue += ["<answer>good</answer>", "<answer>5</answer>", "no tags", "<answer>3.5</answer>"]
    scores, (a, b) = sc.score([clip(), clip()])
    assert calls[0]["rows"] == 2 and not calls[0]["do_sample"]
    assert calls[1] == {"rows": 1, "do_sample": True, "temperature": 0.7, "seed": 1000}   # only the failed clip
    assert calls[2]["rows"] == 1
    assert scores.tolist() == [3.5, 5.0]
    assert a.parse_ok and a.sampling["generation"]["retries"] == 2
    assert a.sampling["generation"]["sample_scores"] == [None, None, 3.5]
    assert sc.stats["retries"] == 2 and sc.stats["parse_failures"] == 0


def test_several_samples_are_averaged(tok_folder, replay):
    queue, calls = replay
    sc = stub_scorer(tok_folder, num_samples=3, temperature=0.9)
    queue += ["<answer>4</answer>", "<answer>x</answer>", "<answer>3</answer>"]
    scores, (r,) = sc.score([clip()])
    assert calls == [{"rows": 3, "do_sample": True, "temperature": None, "seed": 0}]
    g = r.sampling["generation"]
    assert r.score == 3.5 and g["answers"] == 3 and g["answers_parsed"] == 2
    assert g["sample_scores"] == [4.0, None, 3.0] and g["temperature"] == 0.9


def test_expected_score_from_level_probabilities(tok_folder, replay):
    queue, _ = replay
    sc = stub_scorer(tok_folder, scoring="expected")
    tok = sc.adapter.tokenizer
    text = "<think>sharp</think><answer>3.45</answer>"
    ids = tok.encode(text, add_special_tokens=False)
    i = ids.index(token_id("3"))
    queue.append(answer(tok, text, {i: [0.0, 0.1, 0.4, 0.4, 0.1]}))
    # E = 0.2 + 1.2 + 1.6 + 0.5 = 3.5 -> 3.45 + (3.5 - 3) = 3.95
    scores, (r,) = sc.score([clip()])
    assert r.score == pytest.approx(3.95) and r.sampling["generation"]["parsed_score"] == pytest.approx(3.45)
    assert r.sampling["generation"]["level_probs"] == pytest.approx([0.0, 0.1, 0.4, 0.4, 0.1])
    # a number not written with a level token (full-width digit) has no expected score: parsed is used
    queue.append(answer(tok, "<answer>４</answer>"))
    _, (r2,) = sc.score([clip()])
    assert r2.parse_ok and r2.score == 4.0 and r2.sampling["generation"]["expected_score"] is None


def test_dimensions_prompt(tok_folder, replay):
    queue, _ = replay
    sc = stub_scorer(tok_folder, card_name="lmm-dimensions")
    assert sc.task.kind == "dimensions" and "Motion Amplitude" in sc.question
    tok = sc.adapter.tokenizer
    text = ("<think>smooth</think><answer>Motion Quality: 4\nMotion Amplitude: 2\nAesthetic Quality: 3\n"
            "Content Quality: 5\nClarity Quality: 4\nOverall Quality: 3.5</answer>")
    ids = tok.encode(text, add_special_tokens=False)
    i = ids.index(token_id("2"))   # Motion Amplitude's digit
    queue.append(answer(tok, text, {i: [0.5, 0.5, 0.0, 0.0, 0.0]}))
    _, (r,) = sc.score([clip()])
    assert r.parse_ok and r.score == 3.5
    assert r.dimensions == {"Motion Quality": 4, "Motion Amplitude": 2, "Aesthetic Quality": 3, "Content Quality": 5,
                            "Clarity Quality": 4}
    assert r.sampling["generation"]["dimensions_expected"]["Motion Amplitude"] == pytest.approx(1.5)
    queue.append(answer(tok, "<answer>Motion Quality: 4</answer>"))
    scores, (bad,) = sc.score([clip()])
    assert not bad.parse_ok and math.isnan(scores[0]) and "Overall Quality" in bad.sampling["generation"]["failure"]


def test_metric_counts_parse_failures(tok_folder, replay):
    queue, _ = replay
    m = vqametric.create_metric("vqathinker-8b", reasoning={"adapter": StubAdapter(tok_folder)},
                                sampling={"num_segments": 4, "global_size": 56})
    queue += ["<answer>4</answer>", "oops", "<answer>2</answer>"]
    out = m([clip(), clip(), clip()])
    assert out[0] == 4 and math.isnan(out[1]) and out[2] == 2
    assert int(m.parse_failures) == 1 and int(m.count) == 2
    assert float(m.compute()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="reasoning"):
        vqametric.create_metric("vqathinker-8b", mode="fast")
    with pytest.raises(ValueError, match="gradients"):
        vqametric.create_metric("vqathinker-8b", as_loss=True, reasoning={"adapter": StubAdapter(tok_folder)})


def test_cli_explain_text(tok_folder, replay, monkeypatch, capsys, sample_mp4):
    from vqametric import backends
    from vqametric.cli import main

    made = {}

    def fake_build(card, device=None, **options):
        made.update(options)
        return build_scorer(get_card(card.name, sampling=SMALL), adapter=StubAdapter(tok_folder))

    monkeypatch.setattr(backends, "build_scorer", fake_build)
    queue, _ = replay
    queue += ["<think>smooth</think><answer>4.5</answer>"]
    assert main(["explain", str(sample_mp4), "--samples", "1", "--scoring", "expected"]) == 0
    out = capsys.readouterr().out
    assert "score: 4.500 / 5" in out and "reasoning:\n    smooth" in out
    assert made["scoring"] == "expected" and made["num_samples"] == 1
    queue += ["I am not sure."]
    assert main(["explain", str(sample_mp4)]) == 1          # a parse failure is a failure
    assert "PARSE FAILED" in capsys.readouterr().out
    assert main(["explain", str(sample_mp4), "--model", "vqametric-fast"]) == 2


def test_entry_points_with_a_tiny_checkpoint(tmp_path, sample_mp4, capsys):
    from vqametric.cli import main

    folder = str(tmp_path / "q25")
    build_qwen(folder, "2.5")
    small = get_card("visualquality-r1-7b", sampling=SMALL)
    r = vqametric.explain(clip(), model=small, checkpoint=folder, device="cpu", max_new_tokens=3)
    assert isinstance(r, vqametric.QualityResult) and r.raw_answer is not None
    assert r.sampling["generation"]["max_new_tokens"] == 3 and r.sampling["frame_indices"]
    rs = vqametric.explain([clip(), clip(6)], model=small, checkpoint=folder, device="cpu", max_new_tokens=3)
    assert len(rs) == 2
    m = vqametric.VQAThinkerMetric(model="visualquality-r1-7b", mode="reasoning", checkpoint=folder,
                                   dtype=torch.float32, device="cpu", sampling={"num_segments": 4, "global_size": 56},
                                   reasoning={"max_new_tokens": 3})
    out = m(clip())
    assert out.shape == (1,) and int(m.parse_failures) + int(m.count) == 1
    code = main(["explain", str(sample_mp4), "--model", "visualquality-r1-7b", "--checkpoint", folder,
                 "--device", "cpu", "--max-new-tokens", "3", "--frames", "4", "--format", "json"])
    (rec,) = json.loads(capsys.readouterr().out)
    assert code == (0 if rec["parse_ok"] else 1)
    assert rec["model"] == "visualquality-r1-7b" and "raw_answer" in rec and "text" in rec
    assert len(rec["sampling"]["frame_indices"]) == 4


def test_unknown_option_and_prompt(tok_folder):
    with pytest.raises(TypeError, match="unknown reasoning option"):
        stub_scorer(tok_folder, temprature=0.5)
    with pytest.raises(ValueError, match="prompt"):
        stub_scorer(tok_folder, prompt="haiku")
    with pytest.raises(ValueError, match="scoring"):
        stub_scorer(tok_folder, scoring="median")


# --------------------------------------------------------------------------------------------
# loading safety


def test_pickle_checkpoints_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")
    with pytest.raises(WeightsNotFound, match="pickle"):
        resolve_checkpoint(str(folder))
    with pytest.raises(WeightsNotFound, match="pickle"):
        resolve_checkpoint(str(folder / "pytorch_model.bin"))
    with pytest.raises(WeightsNotFound, match="pickle"):
        build_scorer(get_card("vqathinker-8b"), checkpoint=str(folder))
    with pytest.raises(WeightsNotFound):
        resolve_checkpoint(str(tmp_path / "nowhere" / "at-all"))


def test_no_network_without_a_hub_id(monkeypatch):
    import huggingface_hub

    seen = []

    def fake_snapshot(repo_id, allow_patterns=None, local_files_only=False, **kw):
        seen.append((repo_id, tuple(allow_patterns), local_files_only))
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    with pytest.raises(WeightsNotFound, match="checkpoint='kkkkkklinhan/InternVL3-VQAThinker-8B'"):
        build_scorer(get_card("vqathinker-8b"))
    assert seen[-1] == ("kkkkkklinhan/InternVL3-VQAThinker-8B", tuple(HUB_PATTERNS), True)   # cache only
    with pytest.raises(WeightsNotFound, match="Hugging Face Hub"):
        resolve_checkpoint("some-owner/some-model")
    assert seen[-1][2] is False                                                    # an explicit id may download
    assert not any(p.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl")) for p in HUB_PATTERNS)


def test_memory_estimate_error(tmp_path, monkeypatch):
    folder = str(tmp_path / "q")
    build_qwen(folder, "2.5")
    monkeypatch.setattr(mem_mod, "available_bytes", lambda device: 1024)
    with pytest.raises(ModelTooLarge, match=r"needs about [0-9.]+ GiB \(weights .* KV cache") as e:
        build_scorer(get_card("visualquality-r1-7b", sampling=SMALL), device="cpu", checkpoint=folder)
    assert isinstance(e.value, MemoryError) and "load_in_8bit" in str(e.value)


def test_wrong_family_and_8bit_on_cpu(tmp_path):
    folder = str(tmp_path / "q")
    build_qwen(folder, "2.5")
    with pytest.raises(WeightsNotFound, match="expects a vqathinker checkpoint"):
        build_scorer(get_card("vqathinker-8b", sampling=SMALL), device="cpu", checkpoint=folder)
    with pytest.raises(vqametric.BackendUnavailable, match="CUDA"):
        build_scorer(get_card("visualquality-r1-7b", sampling=SMALL), device="cpu", checkpoint=folder,
                     load_in_8bit=True)
