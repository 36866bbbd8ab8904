"""Distillation into the fast head: a student learns a teacher's scores, resumes, installs by name."""
import json
import math

import numpy as np
import pytest
import torch

from media import write_video

import vqametric
from vqametric.backends import FastHead, HeadConfig, save_head
from vqametric.train import distill as D


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """20 short clips whose brightness sets the teacher's score (1.5 dark .. 4.5 bright)."""
    d = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        level = rng.uniform(0.15, 0.85)
        tex = rng.normal(0, 12, (6, 48, 64, 3))
        frames = np.clip(255 * level + tex, 0, 255).astype(np.uint8)
        path = str(d / f"c{i:02d}.mp4")
        write_video(path, frames, fps=6)
        rows.append((path, 1.0 + 4.0 * level))
    with torch.random.fork_rng():      # the same initial student whichever tests ran before
        torch.manual_seed(0)
        head = FastHead(HeadConfig(frames_per_segment=2, fragment_size=56, global_size=32, width=6))
    init = str(d / "init.safetensors")
    save_head(head, init, head.sampling_config(num_segments=2), name="tiny-init")
    return d, rows, init


def brightness_teacher(path):
    with vqametric.open_clip(path) as c:
        f = c.read([0])
    return float(1.0 + 4.0 * (f.y.float().mean() - 16) / 219)


def test_student_learns_the_teacher_and_installs_by_name(clips, tmp_path, monkeypatch, one_thread):
    d, rows, init = clips
    monkeypatch.setenv("VQAMETRIC_MODELS", str(tmp_path / "models"))
    settings = D.DistillSettings(name="tiny-distilled", init=init, steps=120, batch_size=8, learning_rate=3e-3,
                                 val_fraction=0.3, seed=0)
    out = str(tmp_path / "run")
    m = D.distill(rows, brightness_teacher, out, settings)
    log = json.load(open(f"{out}/log.json"))
    first = np.mean([e["loss"] for e in log[:10]])
    last = np.mean([e["loss"] for e in log[-10:]])
    assert last < 0.5 * first, (first, last)
    assert m["validation"] == 6 and m["student_vs_teacher"]["srcc"] > 0.7, m["student_vs_teacher"]
    assert "student_vs_mos" in m and "teacher_vs_mos" in m
    # installed: usable by name in this process and by path anywhere
    assert "tiny-distilled" in vqametric.list_models()
    r = vqametric.score(rows[0][0], model="tiny-distilled")
    assert r.model == "tiny-distilled" and 1 <= r.score <= 5


def test_teacher_scores_are_cached_and_failures_skipped(clips, tmp_path):
    d, rows, init = clips
    calls = []

    def teacher(path):
        calls.append(path)
        return math.nan if path.endswith("c00.mp4") else 3.0

    cache = str(tmp_path / "t.jsonl")
    first = D.teacher_scores([p for p, _ in rows[:5]], teacher, cache)
    assert math.isnan(first[rows[0][0]]) and first[rows[1][0]] == 3.0 and len(calls) == 5
    again = D.teacher_scores([p for p, _ in rows[:6]], teacher, cache)
    assert len(calls) == 6 and set(again) == {p for p, _ in rows[:6]}   # only the new video was scored


def test_too_few_teacher_scores_is_an_error(clips, tmp_path):
    d, rows, init = clips
    with pytest.raises(ValueError, match="needs at least 4"):
        D.distill(rows[:5], lambda p: math.nan, str(tmp_path / "r"), D.DistillSettings(init=init, steps=1),
                  install=False)


def test_video_list_file(tmp_path):
    (tmp_path / "list.txt").write_text("# clips\na.mp4\n\n/abs/b.mp4\n")
    assert D.read_video_list(str(tmp_path / "list.txt")) == [(str(tmp_path / "a.mp4"), None), ("/abs/b.mp4", None)]


def test_train_distill_command_with_a_tiny_reasoning_teacher(clips, tmp_path, monkeypatch, one_thread):
    from test_lmm_tiny import build_qwen, script_language_model

    from vqametric.cli import main
    d, rows, init = clips
    monkeypatch.setenv("VQAMETRIC_MODELS", str(tmp_path / "models"))
    build_qwen(str(tmp_path / "ckpt"), "2.5")
    real = D.LMMTeacher

    def scripted_teacher(card, device=None, **options):
        """The real teacher, with the tiny model scripted to answer (clip-dependent expected scores)."""
        teacher = real(card, device=device, **options)
        script_language_model(teacher.scorer.adapter.model, keep_layers=True)
        return teacher
    monkeypatch.setattr(D, "LMMTeacher", scripted_teacher)
    (tmp_path / "videos.txt").write_text("\n".join(p for p, _ in rows[:6]) + "\n")
    (tmp_path / "distill.toml").write_text(f"""videos = "videos.txt"
output = "run"
[teacher]
card = "visualquality-r1-7b"
checkpoint = "ckpt"
frames = 2
global_size = 56
max_new_tokens = 12
[student]
name = "tiny-from-qwen"
init = "{init}"
steps = 3
batch_size = 2
""")
    assert main(["train", "distill", "--config", str(tmp_path / "distill.toml"), "--check"]) == 0
    assert main(["train", "distill", "--config", str(tmp_path / "distill.toml"), "--quiet"]) == 0
    scored = [json.loads(line) for line in open(tmp_path / "run" / "teacher_scores.jsonl")]
    assert len(scored) == 6 and all(1 <= r["score"] <= 5 for r in scored)
    assert len({round(r["score"], 6) for r in scored}) > 1          # expected scores differ between clips
    metrics = json.load(open(tmp_path / "run" / "metrics.json"))
    assert metrics["teacher_scored"] == 6 and metrics["train"] + metrics["validation"] == 6
    assert "tiny-from-qwen" in vqametric.list_models()
    # a misspelt key is a config error (exit 2) naming the fix
    (tmp_path / "bad.toml").write_text('videos = "videos.txt"\noutput = "run2"\n[student]\nstpes = 3\n')
    assert main(["train", "distill", "--config", str(tmp_path / "bad.toml")]) == 2
