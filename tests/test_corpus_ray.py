"""The Ray Data engine (``vqametric score --engine ray``): the local engine's rows, failures and resume.

One local Ray (2 CPUs, no dashboard) serves the whole module; skipped where Ray is not installed,
except the check that ``--engine ray`` without Ray is a typed error naming the extra.
"""
import signal
import sys

import pytest

from test_corpus import CLIPS, _start, _wait_for_rows, corpus, in_corpus, parser, stable  # noqa: F401 - fixtures
from vqametric.corpus import load_rows, run_score, score_paths
from vqametric.corpus.runner import EngineUnavailable

SOME = ["clips/broken.mp4", "clips/c0.mp4", "clips/trunc.mp4", "clips/sub/c1.mp4"]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()


def same(a, b):
    """Equal, floats to 1e-3: actors may run fewer threads than this process, and sums differ in the
    last digits."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, abs=1e-3)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_ray_gives_the_local_engines_rows(ray_local, in_corpus, tmp_path):  # noqa: F811
    out = str(tmp_path / "ray.jsonl")
    local = stable(score_paths(SOME))
    rows = list(score_paths(SOME, jobs=2, engine="ray", output=out))
    assert same(stable(rows), local)  # the same fields, scores, warnings and failures
    assert stable(load_rows(out, "jsonl")) == stable(rows)  # each written as it came
    by = {r["path"]: r for r in rows}
    assert by["clips/broken.mp4"]["status"] == "failed" and by["clips/broken.mp4"]["error"] == "VideoDecodeError"
    assert by["clips/trunc.mp4"]["status"] == "ok" and "is truncated" in by["clips/trunc.mp4"]["warnings"][0]
    assert ray_local.is_initialized()  # a Ray the run did not start is left running


def test_cli_engine_ray_csv_keep_list_summary_and_exit_status(ray_local, in_corpus, tmp_path, capsys):  # noqa: F811
    out, keep = str(tmp_path / "s.csv"), str(tmp_path / "keep.txt")
    argv = ["clips", "--engine", "ray", "-j", "2", "-q", "-o", out, "--keep-above", "0", "--keep-list", keep]
    assert run_score(parser().parse_args(argv)) == 1  # broken.mp4 failed, the others were scored
    err = capsys.readouterr().err
    assert f"summary: {len(CLIPS) - 1} scored, 1 failed; 1 clip(s) with warnings" in err
    assert "1 of 6 file(s) failed: VideoDecodeError 1" in err and "Traceback" not in err
    rows = load_rows(out, "csv")
    assert sorted(r["path"] for r in rows) == sorted(CLIPS)
    assert sorted(open(keep).read().split()) == sorted(r["path"] for r in rows if r["status"] == "ok")


def test_sigterm_finishes_the_clips_in_flight_then_resume(ray_local, corpus, tmp_path, capsys,  # noqa: F811
                                                         monkeypatch):
    out = str(tmp_path / "stopped.jsonl")
    address = ray_local.get_runtime_context().gcs_address  # the driver joins this module's Ray
    proc = _start(tmp_path, corpus, "clips", "-o", out, "--engine", "ray", "-j", "2", "--ray-address", address)
    assert _wait_for_rows(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    rows = load_rows(out, "jsonl")
    assert 1 <= len(rows) < len(CLIPS) and len({r["path"] for r in rows}) == len(rows)
    monkeypatch.chdir(corpus)
    assert run_score(parser().parse_args(["clips", "-o", out, "--resume", "-q", "--engine", "ray", "-j", "2"])) == 1
    assert f"{len(rows)} skipped (already in the output)" in capsys.readouterr().err
    assert sorted(r["path"] for r in load_rows(out, "jsonl")) == sorted(CLIPS)  # every clip exactly once


def test_engine_ray_without_ray_is_a_typed_error(in_corpus, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    monkeypatch.delitem(sys.modules, "vqametric.corpus.ray_engine", raising=False)
    with pytest.raises(EngineUnavailable, match=r'pip install "vqametric\[ray\]"'):
        score_paths(["clips/c0.mp4"], engine="ray")
    assert run_score(parser().parse_args(["clips/c0.mp4", "--engine", "ray"])) == 1
    err = capsys.readouterr().err
    assert 'error: --engine ray needs Ray Data' in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # a usage error
        run_score(parser().parse_args(["clips/c0.mp4", "--ray-address", "auto"]))
    assert e.value.code == 2
