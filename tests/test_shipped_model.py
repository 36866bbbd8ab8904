"""The shipped default model: its weights load in both runtimes, agree, and rank degradations."""
import numpy as np
import pytest
import torch

import vqametric
from vqametric import demo
from vqametric.registry import DEFAULT_MODEL, get_card
from vqametric.train.distortions import degrade


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
