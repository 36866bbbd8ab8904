"""Fast head: torch vs ONNX Runtime parity, safetensors round trip, refusing unsafe weights."""
import os

import numpy as np
import pytest
import torch

from vqametric.backends import DISTORTIONS, FastHead, HeadConfig, load_head, save_head
from vqametric.backends.head import read_head_metadata
from vqametric.backends.onnx_runtime import OnnxHead
from vqametric.errors import WeightsNotFound
from vqametric.registry import card_from_weights


@pytest.mark.parametrize("n", [1, 3, 7])
def test_onnx_matches_torch_float32(tiny_head_files, n):
    head = tiny_head_files["head"]
    runner = OnnxHead(tiny_head_files["onnx"])
    torch.manual_seed(n)
    frag, glob = head.example_inputs(n)
    with torch.no_grad():
        want = head(frag, glob)
    got = runner(frag, glob)
    for k in ("score", "attribution", "severity"):
        assert got[k].shape == want[k].shape
        assert (got[k] - want[k]).abs().max().item() < 1e-4, k


def test_outputs_have_documented_ranges(tiny_head_files):
    head = tiny_head_files["head"]
    frag, glob = head.example_inputs(4)
    out = head(frag, glob)
    assert out["score"].shape == (4,) and torch.all((out["score"] >= 1) & (out["score"] <= 5))
    assert out["severity"].shape == (4, len(DISTORTIONS))
    assert torch.all((out["severity"] >= 0) & (out["severity"] <= 1))
    assert out["attribution"].shape == (4, len(DISTORTIONS) + 1)


def test_single_frame_segments_work():
    head = FastHead(HeadConfig(frames_per_segment=1, fragment_size=56, global_size=32, width=4)).eval()
    out = head(*head.example_inputs(2))
    assert torch.isfinite(out["score"]).all()


def test_safetensors_round_trip(tiny_head_files, tmp_path):
    loaded, meta = load_head(tiny_head_files["safetensors"])
    assert meta["name"] == "tiny-test-head" and meta["sampling"]["num_segments"] == 4
    frag, glob = tiny_head_files["head"].example_inputs(2)
    with torch.no_grad():
        a = tiny_head_files["head"](frag, glob)["score"]
        b = loaded(frag, glob)["score"]
    assert torch.equal(a, b)


def test_onnx_file_is_self_contained(tiny_head_files):
    folder = os.path.dirname(tiny_head_files["onnx"])
    assert sorted(f for f in os.listdir(folder) if not f.endswith((".onnx", ".safetensors"))) == []
    meta = read_head_metadata(tiny_head_files["onnx"])
    assert meta["head"]["fragment_size"] == 112


def test_card_from_weights_finds_both_runtimes(tiny_head_files):
    card = card_from_weights(tiny_head_files["onnx"])
    assert card.name == "tiny-test-head" and set(card.available_runtimes()) == {"onnx", "torch"}


def test_pickle_checkpoint_is_refused(tmp_path):
    p = tmp_path / "head.pt"
    torch.save({"w": torch.zeros(1)}, p)
    with pytest.raises(WeightsNotFound, match="pickle"):
        load_head(p)


def test_missing_and_foreign_weights(tmp_path):
    with pytest.raises(WeightsNotFound, match="does not exist"):
        load_head(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file
    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(WeightsNotFound, match="no vqametric head metadata"):
        load_head(p)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(64))
    with pytest.raises(WeightsNotFound, match="not a readable safetensors"):
        load_head(junk)


def test_architecture_mismatch_is_reported(tiny_head_files, tmp_path):
    other = FastHead(HeadConfig(frames_per_segment=2, fragment_size=112, global_size=64, width=12))
    p = tmp_path / "mismatch.safetensors"
    save_head(other, p)
    meta_bad = tmp_path / "bad.safetensors"
    from safetensors.torch import load_file, save_file
    state = load_file(str(p))
    import json
    from vqametric.backends.head import FORMAT_KEY
    save_file(state, str(meta_bad), metadata={FORMAT_KEY: json.dumps(read_head_metadata(
        tiny_head_files["safetensors"]))})
    with pytest.raises(WeightsNotFound, match="does not match the head architecture"):
        load_head(meta_bad)
