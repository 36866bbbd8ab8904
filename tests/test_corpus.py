"""Scoring corpora (vqametric.corpus): inputs, workers, streamed and resumable files, signals, summary."""
import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from media import moving_frames, truncated_copy, write_video
from vqametric.corpus import add_corpus_options, collect_paths, load_rows, run_score, score_paths

VOLATILE = ("seconds", "timings")  # wall times differ from run to run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small folder: 4 clips (2 in a subfolder), a truncated clip, a broken file and a text file."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "clips" / "sub").mkdir(parents=True)
    fast = {"container_options": {"movflags": "faststart"}}  # index first: a truncated copy still opens
    for i in range(4):
        write_video(root / "clips" / ("sub" if i % 2 else "") / f"c{i}.mp4", moving_frames(20, 48, 64, seed=i),
                    **fast)
    truncated_copy(root / "clips" / "c0.mp4", root / "clips" / "trunc.mp4", 0.6)
    (root / "clips" / "broken.mp4").write_text("not a video")
    (root / "clips" / "notes.txt").write_text("not a clip")
    return root


@pytest.fixture
def in_corpus(corpus, monkeypatch):
    monkeypatch.chdir(corpus)  # relative paths, as a user types them
    return corpus


def parser():
    """The ``score`` subparser as vqametric/cli.py declares it, plus the corpus options."""
    p = argparse.ArgumentParser(prog="vqametric score")
    p.add_argument("paths", nargs="+")  # add_corpus_options makes it optional (manifests, stdin)
    p.add_argument("--model", default="vqametric-fast")
    p.add_argument("--device", default=None)
    p.add_argument("--runtime", choices=["onnx", "torch"], default=None)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", "-o", default=None)
    p.add_argument("--fps", type=float, default=None)
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--fail-below", type=float, default=None)
    return add_corpus_options(p)


def stable(rows):
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows), key=lambda r: r["path"])


CLIPS = ["clips/broken.mp4", "clips/c0.mp4", "clips/c2.mp4", "clips/trunc.mp4", "clips/sub/c1.mp4",
         "clips/sub/c3.mp4"]


def test_inputs_folders_glob_manifests_stdin(in_corpus):
    assert collect_paths(["clips"]) == CLIPS  # recursive, sorted, relative kept, notes.txt left out
    assert collect_paths(["clips"], glob="c*.mp4") == ["clips/c0.mp4", "clips/c2.mp4", "clips/sub/c1.mp4",
                                                       "clips/sub/c3.mp4"]
    assert collect_paths(["clips"], glob="sub/*") == ["clips/sub/c1.mp4", "clips/sub/c3.mp4"]
    # a file named explicitly is kept whatever its extension; duplicates go, first position wins
    assert collect_paths(["clips/notes.txt", "clips/c0.mp4", "clips", "clips/c0.mp4"]) == \
        ["clips/notes.txt", "clips/c0.mp4"] + [p for p in CLIPS if p != "clips/c0.mp4"]
    (in_corpus / "m.csv").write_text("mos,path\n3.1,clips/c0.mp4\n2.0,clips/sub/c1.mp4\n")
    (in_corpus / "m.jsonl").write_text('{"path": "clips/c2.mp4"}\n\n{"path": "clips/c0.mp4", "x": 1}\n')
    (in_corpus / "clips" / "list.txt").write_text("# relative to the manifest's folder\nc2.mp4\n\nsub/c3.mp4\n")
    assert collect_paths([], manifests=["m.csv", "m.jsonl", "clips/list.txt"]) == \
        ["clips/c0.mp4", "clips/sub/c1.mp4", "clips/c2.mp4", "clips/sub/c3.mp4"]
    stdin = io.StringIO("clips/sub/c3.mp4\n\nclips/c0.mp4\n")
    assert collect_paths(["-", "clips/c0.mp4"], stdin=stdin) == ["clips/sub/c3.mp4", "clips/c0.mp4"]
    with pytest.raises(ValueError, match="no clips"):
        collect_paths(["clips"], glob="*.mov")


def test_streamed_jsonl_rows_are_on_disk_as_each_clip_finishes(in_corpus, tmp_path):
    out = str(tmp_path / "rows.jsonl")
    run = score_paths(["clips"], output=out)
    rows = []
    for row in run:
        rows.append(row)
        on_disk = load_rows(out, "jsonl")
        assert [r["path"] for r in on_disk] == [r["path"] for r in rows]  # flushed before the next clip
    assert [r["path"] for r in rows] == CLIPS
    by = {r["path"]: r for r in rows}
    assert by["clips/broken.mp4"]["status"] == "failed" and by["clips/broken.mp4"]["error"] == "VideoDecodeError"
    assert by["clips/broken.mp4"]["score"] is None and by["clips/broken.mp4"]["size"] == 11
    ok = by["clips/c0.mp4"]
    assert ok["status"] == "ok" and 1 <= ok["score"] <= 5 and ok["warnings"] == [] and ok["num_frames"] == 20
    assert ok["model"] == "vqametric-fast" and ok["timeline"] and ok["attribution"]  # the full to_dict()
    trunc = by["clips/trunc.mp4"]  # decode warnings are data, not stderr
    assert trunc["status"] == "ok" and trunc["num_frames"] < 20
    assert len(trunc["warnings"]) == 1 and "is truncated" in trunc["warnings"][0]

    # the same rows through the CSV writer, and a crash's half-written last line is tolerated
    out_csv = str(tmp_path / "rows.csv")
    rows_csv = list(score_paths(["clips/c0.mp4", "clips/trunc.mp4", "clips/broken.mp4"], output=out_csv))
    back = load_rows(out_csv, "csv")
    assert [(r["path"], r["status"], r["score"], r["warnings"]) for r in back] == \
        [(r["path"], r["status"], r["score"], r["warnings"]) for r in rows_csv]
    with open(out_csv, "a") as f:
        f.write("clips/sub/c1.mp4,ok,3.2")
    assert len(load_rows(out_csv, "csv")) == 3


def test_a_json_file_left_open_by_a_crash_is_read_and_closed(tmp_path):
    from vqametric.corpus import RowWriter
    out = str(tmp_path / "r.json")
    w = RowWriter(out, "json")
    for i in range(3):
        w.write({"path": f"c{i}.mp4", "status": "ok", "score": 3.0 + i, "warnings": []})
    w.f.write('\n{"path": "c3.mp4", "sta')  # killed mid-row: no closing bracket
    w.f.flush()
    rows = load_rows(out, "json")
    assert [r["path"] for r in rows] == ["c0.mp4", "c1.mp4", "c2.mp4"]
    w2 = RowWriter(out, "json", existing=rows)
    w2.write({"path": "c3.mp4", "status": "failed", "score": None, "warnings": ["w"]})
    w2.close()
    with open(out) as f:
        assert [r["path"] for r in json.load(f)] == ["c0.mp4", "c1.mp4", "c2.mp4", "c3.mp4"]
    assert [r["path"] for r in load_rows(out, "json")] == ["c0.mp4", "c1.mp4", "c2.mp4", "c3.mp4"]


def test_jobs_2_gives_the_same_rows_as_jobs_1(in_corpus):
    some = ["clips/broken.mp4", "clips/c0.mp4", "clips/trunc.mp4", "clips/sub/c1.mp4"]
    one = list(score_paths(some, jobs=1))
    two = list(score_paths(some, jobs=2))
    assert sorted(r["path"] for r in two) == sorted(some)
    a, b = stable(one), stable(two)
    # workers run fewer threads than this process: floating-point sums may differ in the last digits
    assert [{k: v for k, v in r.items() if k not in ("score", "timeline", "attribution")} for r in b] == \
        [{k: v for k, v in r.items() if k not in ("score", "timeline", "attribution")} for r in a]
    for x, y in zip(a, b):
        assert y["score"] == (None if x["score"] is None else pytest.approx(x["score"], abs=1e-4))
        assert [s["score"] for s in y.get("timeline", [])] == \
            pytest.approx([s["score"] for s in x.get("timeline", [])], abs=1e-4)
        assert y.get("attribution") == (x.get("attribution") and pytest.approx(x["attribution"], abs=1e-3))


def test_run_score_summary_keep_list_fail_below_resume(in_corpus, tmp_path, capsys, monkeypatch):
    out, keep = str(tmp_path / "s.jsonl"), str(tmp_path / "keep.txt")
    monkeypatch.setattr(sys, "stdin", io.StringIO("clips/sub/c3.mp4\n"))
    args = parser().parse_args(["clips/c0.mp4", "clips/c2.mp4", "clips/sub/c1.mp4", "clips/broken.mp4",
                                "clips/trunc.mp4", "-", "-o", out, "--keep-above", "0", "--keep-list", keep])
    assert run_score(args) == 1  # one clip failed
    err = capsys.readouterr().err
    rows = load_rows(out, "jsonl")
    scores = sorted(r["score"] for r in rows if r["status"] == "ok")
    assert len(rows) == 6 and len(scores) == 5
    assert "summary: 5 scored, 1 failed; 1 clip(s) with warnings (1 warning(s)" in err
    assert "1 of 6 file(s) failed: VideoDecodeError 1" in err
    assert "scores: " + "  ".join(f"p{q} {np.percentile(scores, q):.3f}" for q in (5, 25, 50, 75, 95)) in err
    slowest = sorted(rows, key=lambda r: -r["seconds"])[:5]
    assert "slowest: " + ", ".join(f"{r['path']} ({r['seconds']:.2f} s)" for r in slowest) in err
    assert "is truncated: only" not in err and "Traceback" not in err
    assert open(keep).read().split() == [r["path"] for r in rows if r["status"] == "ok"]

    # resume: nothing left to score; --fail-below names the low clips; the keep list holds earlier rows
    median = float(np.median(scores))
    args = parser().parse_args(["clips", "-o", out, "--resume", "--fail-below", str(median), "-q",
                                "--keep-below", str(median), "--keep-list", keep])
    assert run_score(args) == 1
    err = capsys.readouterr().err
    assert "summary: 0 scored, 0 failed, 6 skipped (already in the output)" in err
    assert f"clip(s) scored below {median:g}" in err
    low = [r["path"] for r in rows if r["status"] == "ok" and r["score"] < median]
    assert low and all(f"below {median:g}: {p}:" in err for p in low)
    assert open(keep).read().split() == low
    assert len(load_rows(out, "jsonl")) == 6


def test_usage_errors_sampling_and_simple_table(in_corpus, tmp_path, capsys):
    for argv in (["clips", "--resume"], ["clips", "--glob", "*.mov"], ["clips/c0.mp4", "--frames-per-segment", "3"],
                 ["--jobs", "0", "clips"]):
        with pytest.raises(SystemExit) as e:  # a usage error, as argparse reports them
            run_score(parser().parse_args(argv))
        assert e.value.code == 2
    assert "--resume needs --output" in capsys.readouterr().err
    # the simple case: a table on stdout, exit 0; sampling overrides reach the scorer
    assert run_score(parser().parse_args(["clips/c0.mp4", "clips/c2.mp4", "--segments", "2"])) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["path", "score", "dominant_distortion", "model", "frames", "seconds"]
    assert "clips/c0.mp4" in out and "vqametric-fast" in out
    (row,) = list(score_paths(["clips/c0.mp4"], sampling={"num_segments": 2}))
    assert len(row["timeline"]) == 2


DRIVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_corpus import parser
    from vqametric.corpus import run_score
    from vqametric.functional import get_scorer

    class Slow:  # a clip takes at least 0.3 s, so that the signal lands mid-run on any machine
        def __init__(self, scorer):
            self.scorer = scorer
        def score(self, *args, **kwargs):
            time.sleep(0.3)
            return self.scorer.score(*args, **kwargs)

    def slow_factory(model, device, runtime):
        return Slow(get_scorer(model, device, runtime))

    if __name__ == "__main__":
        sys.exit(run_score(parser().parse_args(sys.argv[1:]), slow_factory))
""")


def _start(tmp_path, corpus, *argv):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=os.path.dirname(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    return subprocess.Popen([sys.executable, str(driver), *argv], cwd=corpus, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_rows(path, proc, n=1, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if os.path.exists(path) and len(load_rows(path, path.rsplit(".", 1)[1])) >= n:
            return True
        time.sleep(0.05)
    return False


def test_sigkill_then_resume_scores_every_clip_exactly_once(corpus, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "killed.jsonl")
    proc = _start(tmp_path, corpus, "clips", "-o", out, "-q")
    started = _wait_for_rows(out, proc)
    delay = random.uniform(0, 1.0)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert started, f"no row was written before the kill (delay {delay:.2f} s)"
    with open(out, "a") as f:
        f.write('{"path": "clips/sub/c3.mp4", "status": "o')  # a row cut short by the crash
    monkeypatch.chdir(corpus)
    assert run_score(parser().parse_args(["clips", "-o", out, "--resume", "-q"])) == 1  # broken.mp4 failed
    err = capsys.readouterr().err
    rows = load_rows(out, "jsonl")
    assert sorted(r["path"] for r in rows) == sorted(CLIPS), f"killed after {delay:.2f} s"
    assert "skipped (already in the output)" in err and "Traceback" not in err


@pytest.mark.parametrize("sig, ext, code", [(signal.SIGINT, "json", 130), (signal.SIGTERM, "csv", 143)])
def test_a_signal_stops_cleanly_with_a_valid_file(corpus, tmp_path, sig, ext, code):
    out = str(tmp_path / f"stopped.{ext}")
    proc = _start(tmp_path, corpus, "clips", "-o", out)
    assert _wait_for_rows(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if ext == "json":
        with open(out) as f:
            rows = json.load(f)  # a complete JSON array
    else:
        with open(out) as f:
            assert f.read().endswith("\n")  # no row cut short
        rows = load_rows(out, ext)
    assert 1 <= len(rows) < len(CLIPS) and len({r["path"] for r in rows}) == len(rows)
    assert f"interrupted by {sig.name}" in err and "Traceback" not in err
