"""VQAThinkerMetric, create_metric, list_models and the functional API."""
import json

import pytest
import torch

import vqametric
from vqametric import QualityResult, VQAThinkerMetric
from vqametric.errors import ModelNotFound, VQAMetricError


@pytest.fixture(scope="module")
def clips():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 10, 3, 60, 80, generator=g)


def test_metric_protocol(tiny_head_files, clips):
    m = VQAThinkerMetric(tiny_head_files["onnx"])
    assert m.higher_is_better is True and m.full_state_update is False
    assert m.lower_better is False and m.score_range == (1.0, 5.0)
    per_video = m(clips[:2])
    assert per_video.shape == (2,) and torch.all((per_video >= 1) & (per_video <= 5))
    m.update([clips[2]])
    allscores = torch.cat(m.scores)
    assert allscores.shape == (3,)
    assert m.compute().item() == pytest.approx(allscores.mean().item(), abs=1e-6)
    assert len(m.results()) == 1 and isinstance(m.results()[0], QualityResult)
    m.reset()
    with pytest.raises(VQAMetricError, match="before any successful update"), \
            pytest.warns(UserWarning, match="called before the ``update``"):
        m.compute()


def test_higher_is_better_follows_the_card(tiny_head_files):
    card = vqametric.get_card(tiny_head_files["onnx"], lower_better=True)
    m = VQAThinkerMetric(card, runtime="torch")                    # torch: an ONNX session cannot be deep-copied
    assert m.higher_is_better is False and m.lower_better is True
    assert m.clone().higher_is_better is False                    # survives deepcopy
    assert VQAThinkerMetric.higher_is_better is True               # torchmetrics' class-level default is untouched
    assert VQAThinkerMetric(tiny_head_files["onnx"]).higher_is_better is True
    with pytest.raises(AttributeError):
        m.lower_better = False                                     # an alias: the card decides
    with pytest.raises(RuntimeError, match="Can't change const"):
        m.higher_is_better = True                                  # torchmetrics keeps it constant
    assert m.higher_is_better is False and m.lower_better is True


def test_onnx_and_torch_runtimes_agree(tiny_head_files, clips):
    a = VQAThinkerMetric(tiny_head_files["onnx"], runtime="onnx")(clips)
    b = VQAThinkerMetric(tiny_head_files["onnx"], runtime="torch")(clips)
    assert (a - b).abs().max() < 1e-4


def test_a_clip_scores_the_same_alone_and_in_a_batch(tiny_head_files, clips):
    m = VQAThinkerMetric(tiny_head_files["onnx"])
    batch = m(clips)
    alone = torch.stack([m(clips[i:i + 1])[0] for i in range(3)])
    assert (batch - alone).abs().max() < 1e-5


def test_states_merge_like_ddp(tiny_head_files, clips):
    a, b, both = (VQAThinkerMetric(tiny_head_files["onnx"]) for _ in range(3))
    a.update(clips[:1])
    b.update(clips[1:])
    both.update(clips)
    a.merge_state(b)
    assert a.compute().item() == pytest.approx(both.compute().item(), abs=1e-6)
    assert int(a.count) == 3


def test_as_loss_back_propagates_into_pixels(tiny_head_files):
    x = torch.rand(1, 6, 3, 48, 64, requires_grad=True)
    m = vqametric.create_metric(tiny_head_files["safetensors"], as_loss=True)
    loss = m(x)
    assert loss.ndim == 0 and 0 <= loss.item() <= 4
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the loss is score_max - mean score
    assert loss.item() == pytest.approx(5.0 - m.compute().item(), abs=1e-5)


def test_as_loss_refuses_onnx(tiny_head_files):
    with pytest.raises(ValueError, match="runtime='torch'"):
        VQAThinkerMetric(tiny_head_files["onnx"], runtime="onnx", as_loss=True)


def test_sampling_overrides_change_the_plan(tiny_head_files, clips):
    m = VQAThinkerMetric(tiny_head_files["onnx"], sampling={"num_segments": 2})
    m(clips[:1])
    assert len(m.results()[0].timeline) == 2


def test_functional_score_result(tiny_head_files, sample_mp4):
    r = vqametric.score(sample_mp4, model=tiny_head_files["onnx"])
    assert isinstance(r, QualityResult) and 1 <= r.score <= 5
    assert r.model == "tiny-test-head" and len(r.timeline) == 4
    assert r.timeline[0].start_time == 0.0 and r.timeline[-1].end_time == pytest.approx(1.2)
    assert r.dominant_distortion in vqametric.backends.ATTRIBUTION_CLASSES
    assert set(r.timings) >= {"open", "decode", "preprocess", "inference", "total"}
    assert r.clip["num_frames"] == 30 and r.sampling["frame_indices"]
    d = json.loads(r.to_json())
    assert d["score"] == pytest.approx(r.score)
    batch = vqametric.score([sample_mp4, sample_mp4], model=tiny_head_files["onnx"])
    assert isinstance(batch, list) and batch[0].score == pytest.approx(r.score, abs=1e-6)


def test_registry(tiny_head_files):
    card = vqametric.get_card(tiny_head_files["onnx"])
    vqametric.register_model(vqametric.get_card(card, name="my-registered-head"), overwrite=True)
    assert "my-registered-head" in vqametric.list_models()
    assert "my-registered-head" in vqametric.list_models(backend="fast-head", installed_only=True)
    with pytest.raises(ValueError, match="already registered"):
        vqametric.register_model(vqametric.get_card("my-registered-head"))
    m = vqametric.create_metric("my-registered-head")
    assert m.model_name == "my-registered-head"
    with pytest.raises(ModelNotFound, match="did you mean my-registered-head"):
        vqametric.create_metric("my-registred-head")


def test_sampling_that_does_not_fit_the_head_is_a_sampling_error(tiny_head_files):
    with pytest.raises(vqametric.SamplingError, match="set the sampling to match the head"):
        VQAThinkerMetric(tiny_head_files["onnx"], sampling={"fragment_patch": 8})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_without_a_gpu_is_a_typed_error(tiny_head_files):
    with pytest.raises(vqametric.BackendUnavailable, match="no CUDA device"):
        VQAThinkerMetric(tiny_head_files["safetensors"], device="cuda", runtime="torch")


def test_functional_cache_follows_the_registry_and_the_file(tiny_head_files, clips, tmp_path):
    import shutil
    from dataclasses import replace

    from vqametric.backends import FastHead, HeadConfig
    from vqametric.backends.onnx_runtime import export_onnx
    from vqametric.functional import get_scorer

    card = vqametric.get_card(tiny_head_files["onnx"], name="cache-test-head")
    vqametric.register_model(card, overwrite=True)
    assert len(vqametric.score(clips[0], model="cache-test-head").timeline) == 4
    vqametric.register_model(replace(card, sampling=replace(card.sampling, num_segments=2)), overwrite=True)
    assert len(vqametric.score(clips[0], model="cache-test-head").timeline) == 2
    # a head file rewritten in place is reloaded
    path = str(tmp_path / "head.onnx")
    shutil.copy(tiny_head_files["onnx"], path)
    first = get_scorer(path)
    assert get_scorer(path) is first
    torch.manual_seed(123)
    other = FastHead(HeadConfig(frames_per_segment=2, fragment_size=112, global_size=64, width=8)).eval()
    export_onnx(other, path, tiny_head_files["sampling"], name="rewritten")
    assert get_scorer(path) is not first and get_scorer(path).card.name == "rewritten"
