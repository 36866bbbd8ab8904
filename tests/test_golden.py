"""Golden scores of the shipped default model on fixed generated clips (tests/golden/fast_default.json).

Regenerate after an intended model change (the file then holds the new version and weights hash):

    pytest tests/test_golden.py --vqametric-update-baseline
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vqametric
from media import moving_frames, random_yuv420
from vqametric.pytest_plugin import UPDATE_OPTION, assert_quality
from vqametric.regression import load_records

GOLDEN = Path(__file__).parent / "golden" / "fast_default.json"
REGENERATE = f"pytest tests/test_golden.py {UPDATE_OPTION}"
DRIFT = 1e-4  # largest allowed change of a clip or segment score, either way


def _blur(frames: np.ndarray) -> np.ndarray:
    """5x5 box blur of ``(T, H, W, 3)`` uint8 frames (edges replicated)."""
    pad = np.pad(frames.astype(np.float32), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    h, w = frames.shape[1:3]
    out = sum(pad[:, i:i + h, j:j + w] for i in range(5) for j in range(5)) / 25
    return np.round(out).astype(np.uint8)


def _clip(name: str):
    """The fixed inputs: 64x96, 32 frames (30 fps in memory), made from seeded generators only."""
    pan = moving_frames(32, 64, 96, seed=0)
    if name == "pan":
        return pan
    if name == "pan_blur":
        return _blur(pan)
    if name == "pan_noise":
        noise = np.random.default_rng(7).normal(0, 20, pan.shape)
        return np.clip(pan + noise, 0, 255).astype(np.uint8)
    if name == "pan_freeze":
        return np.concatenate([pan[:8], np.repeat(pan[8:9], 8, 0), pan[16:]])  # frames 8-15 hold
    if name == "yuv_waves":
        y, u, v = (torch.from_numpy(p) for p in random_yuv420(32, 64, 96, seed=3))
        return vqametric.YUV420Frames(y, u, v)
    raise KeyError(name)


CLIPS = ("pan", "pan_blur", "pan_noise", "pan_freeze", "yuv_waves")


@pytest.mark.parametrize("name", CLIPS)
def test_default_model_matches_golden_scores(name, request, one_thread):
    if request.config.getoption(UPDATE_OPTION):
        assert_quality(_clip(name), baseline=GOLDEN, name=name, update=True)
    else:
        check_golden(name, GOLDEN)


def check_golden(name: str, path: Path) -> None:
    """Fail unless the default model scores clip ``name`` as the golden file ``path`` says."""
    records = {r["path"]: r for r in load_records(path)} if path.exists() else {}
    if name not in records:
        pytest.fail(f"{path.name} has no golden score for {name!r}; write it with `{REGENERATE}`")
    golden, card = records[name], vqametric.get_card(vqametric.DEFAULT_MODEL)
    if (golden["model"]["name"], golden["model"]["version"]) != (card.name, card.version):
        pytest.fail(f"{path.name} holds scores of {golden['model']['name']} {golden['model']['version']}, the "
                    f"default model is now {card.name} {card.version}: regenerate it with `{REGENERATE}` and "
                    "review the diff")
    result = vqametric.score(_clip(name))
    now = [result.score] + [s.score for s in result.timeline]
    then = [golden["score"]] + [s["score"] for s in golden["timeline"]]
    assert len(now) == len(then), f"{name}: {len(now) - 1} segments now, {len(then) - 1} in the golden file"
    drift = max(abs(a - b) for a, b in zip(now, then))
    assert drift <= DRIFT, (f"{name}: scores of {card.name} {card.version} drifted by {drift:.2e} (> {DRIFT}): "
                            f"now {np.round(now, 5).tolist()}, golden {np.round(then, 5).tolist()}")
    assert [s.frozen for s in result.timeline] == [s["frozen"] for s in golden["timeline"]]


def test_drift_and_new_model_versions_fail_with_the_command(tmp_path, one_thread):
    doc = json.loads(GOLDEN.read_text())
    doc["clips"] = [c for c in doc["clips"] if c["path"] == "pan_blur"]
    doc["clips"][0]["timeline"][2]["score"] += 2e-4
    (tmp_path / "drift.json").write_text(json.dumps(doc))
    with pytest.raises(AssertionError, match="pan_blur: scores of vqametric-fast .* drifted by 2.0"):
        check_golden("pan_blur", tmp_path / "drift.json")
    doc["clips"][0]["model"]["version"] = "0.0.1"
    (tmp_path / "old.json").write_text(json.dumps(doc))
    with pytest.raises(pytest.fail.Exception, match=f"holds scores of vqametric-fast 0.0.1.*`{REGENERATE}`"):
        check_golden("pan_blur", tmp_path / "old.json")
    with pytest.raises(pytest.fail.Exception, match="no golden score for 'pan'"):
        check_golden("pan", tmp_path / "old.json")
