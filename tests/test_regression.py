"""Encoder regression testing: baseline create/check, compare, --fail-below; exit codes and reports."""
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from media import moving_frames, write_video
from vqametric.cli import main
from vqametric.regression import Tolerances, compare_clip, load_records
from vqametric.regression.baseline import SCHEMA_VERSION
from vqametric.registry import DEFAULT_MODEL, get_card

CLIPS = ("a.mp4", "b.mp4")


@pytest.fixture(scope="module")
def encodes(tmp_path_factory):
    """The same two sources at CRF 24 (folder ``crf24``) and 6 CRF higher (``crf30``), same names."""
    root = tmp_path_factory.mktemp("encodes")
    for crf in (24, 30):
        (root / f"crf{crf}").mkdir()
        for seed, name in enumerate(CLIPS):
            write_video(root / f"crf{crf}" / name, moving_frames(50, 128, 192, seed=seed), fps=25,
                        options={"crf": str(crf)})
    return root


@pytest.fixture(scope="module")
def golden(encodes):
    """A baseline of the CRF 24 clips, made in their folder (one thread: bit-identical scores)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(encodes / "crf24")
            assert main(["baseline", "create", *CLIPS, "-o", "baseline.json"]) == 0
    finally:
        torch.set_num_threads(threads)
    return encodes / "crf24" / "baseline.json"


@pytest.fixture
def work(encodes, golden, tmp_path, monkeypatch, one_thread):
    """A folder holding the CRF 24 clips and their baseline; paths are relative to it."""
    for name in CLIPS:
        shutil.copy(encodes / "crf24" / name, tmp_path / name)
    shutil.copy(golden, tmp_path / "baseline.json")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _junit(path):
    suite = ET.parse(path).getroot().find("testsuite")
    return {c.get("name"): c for c in suite.iter("testcase")}, suite


def test_baseline_holds_every_field(work, capsys):
    doc = json.loads((work / "baseline.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "vqametric-baseline"
    assert [c["path"] for c in doc["clips"]] == list(CLIPS)
    c = doc["clips"][0]
    assert set(c) == {"path", "file_sha256", "score", "timeline", "attribution", "dominant_distortion", "model",
                      "sampling", "decode", "package_version"}
    assert c["model"]["name"] == "vqametric-fast" and c["model"]["runtime"] == "onnx"
    assert len(c["model"]["weights_sha256"]) == 64 and len(c["file_sha256"]) == 64
    assert len(c["timeline"]) == 4 and c["decode"]["num_frames"] == 50 and c["decode"]["codec"] == "h264"
    assert main(["baseline", "create", "a.mp4", "-o", "one.json"]) == 0
    assert f"wrote one.json: 1 clip(s), vqametric-fast {get_card(DEFAULT_MODEL).version} onnx" in capsys.readouterr().out


def test_unchanged_clips_pass_with_zero_deltas(work, capsys):
    rc = main(["baseline", "check", "baseline.json", *CLIPS, "--json", "r.json", "--junit", "r.xml"])
    out = capsys.readouterr().out
    assert rc == 0 and out.rstrip().endswith("PASS")
    report = json.loads((work / "r.json").read_text())
    assert report["status"] == "pass" and report["exit_code"] == 0
    for c in report["clips"]:
        assert c["score_delta"] == 0.0 and c["worst_segment_delta"] == 0.0 and c["file_changed"] is False
    assert report["aggregate"] == {"clips": 2, "passed": 2, "regressed": 0, "errors": 0, "mean_score_delta": 0.0,
                                   "min_score_delta": 0.0, "min_segment_delta": 0.0}
    cases, suite = _junit(work / "r.xml")
    assert set(cases) == set(CLIPS) and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert all(c.find("failure") is None for c in cases.values())
    # no clips given: every baseline clip is checked at its stored path
    assert main(["baseline", "check", "baseline.json"]) == 0


def test_six_crf_higher_is_a_regression_naming_each_clip(work, encodes, capsys):
    for name in CLIPS:
        shutil.copy(encodes / "crf30" / name, work / name)
    capsys.readouterr()
    rc = main(["baseline", "check", "baseline.json", *CLIPS, "--junit", "r.xml", "--json", "r.json"])
    out = capsys.readouterr().out
    assert rc == 1 and out.rstrip().endswith("REGRESSION")
    for name in CLIPS:
        assert f"{name}: score fell" in out
    report = json.loads((work / "r.json").read_text())
    assert all(c["status"] == "regression" and c["score_delta"] < -0.1 and c["file_changed"] for c in report["clips"])
    cases, suite = _junit(work / "r.xml")
    assert suite.get("failures") == "2"
    for name in CLIPS:
        assert "score fell" in cases[name].find("failure").get("message")
    # wide enough tolerances accept the drop, absolute or relative
    assert main(["baseline", "check", "baseline.json", "--max-drop", "0.5", "--max-segment-drop", "1"]) == 0
    assert main(["baseline", "check", "baseline.json", "--relative", "--max-drop", "0.3",
                 "--max-segment-drop", "0.5"]) == 0
    assert main(["baseline", "check", "baseline.json", "--relative", "--max-drop", "0.01"]) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["model"].update(weights_sha256="0" * 64), "weights_sha256 differs"),
    (lambda c: c["model"].update(name="vqametric-fast-0.5"), "name differs"),
])
def test_baseline_of_another_model_is_invalid(work, capsys, edit, message):
    doc = json.loads((work / "baseline.json").read_text())
    for c in doc["clips"]:
        edit(c)
    (work / "other.json").write_text(json.dumps(doc))
    assert main(["baseline", "check", "other.json", *CLIPS, "--model", "vqametric-fast"]) == 2
    err = capsys.readouterr().err
    assert message in err and "recreate the baseline" in err


def test_unreadable_baselines_exit_2(work, capsys):
    (work / "junk.json").write_text("{not json")
    doc = json.loads((work / "baseline.json").read_text())
    (work / "future.json").write_text(json.dumps({**doc, "schema_version": SCHEMA_VERSION + 1}))
    assert main(["baseline", "check", "junk.json", *CLIPS]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert main(["baseline", "check", "future.json", *CLIPS]) == 2
    assert f"schema_version {SCHEMA_VERSION + 1}" in capsys.readouterr().err
    assert main(["baseline", "check", "missing.json"]) == 2


def test_unmatched_and_undecodable_clips_exit_2(work, encodes, capsys):
    shutil.copy(encodes / "crf30" / "a.mp4", work / "c.mp4")
    capsys.readouterr()
    assert main(["baseline", "check", "baseline.json", "a.mp4", "c.mp4", "--junit", "r.xml"]) == 2
    out = capsys.readouterr().out
    assert "not in the baseline: c.mp4" in out and "in the baseline but not given: b.mp4" in out
    cases, suite = _junit(work / "r.xml")
    assert cases["c.mp4"].find("error") is not None and cases["b.mp4"].find("error") is not None
    (work / "b.mp4").write_text("not a video")
    assert main(["baseline", "check", "baseline.json", "--junit", "r.xml"]) == 2
    cases, _ = _junit(work / "r.xml")
    assert "VideoDecodeError" in cases["b.mp4"].find("error").get("message")
    assert cases["a.mp4"].find("error") is None and cases["a.mp4"].find("failure") is None


def test_compare_score_outputs_and_baselines(work, encodes, capsys):
    assert main(["score", *CLIPS, "--format", "json", "-o", "old.json"]) == 0
    assert main(["compare", "baseline.json", "old.json", "--junit", "r.xml"]) == 0
    assert main(["compare", "old.json", "baseline.json"]) == 0
    for name in CLIPS:
        shutil.copy(encodes / "crf30" / name, work / name)
    assert main(["score", *CLIPS, "--format", "json", "-o", "new.json"]) == 0
    capsys.readouterr()
    assert main(["compare", "old.json", "new.json", "--json", "r.json"]) == 1
    out = capsys.readouterr().out
    assert all(f"{name}: score fell" in out for name in CLIPS)
    assert json.loads((work / "r.json").read_text())["aggregate"]["regressed"] == 2
    other = json.loads((work / "new.json").read_text())
    for r in other:
        r["model_version"] = "0.9.0"
    (work / "other.json").write_text(json.dumps(other))
    assert main(["compare", "old.json", "other.json"]) == 2
    assert "version differs" in capsys.readouterr().err


def test_fail_below(work, capsys):
    assert main(["score", *CLIPS, "--fail-below", "1.0", "-q"]) == 0
    capsys.readouterr()
    assert main(["score", *CLIPS, "--fail-below", "4.5", "-q"]) == 1
    err = capsys.readouterr().err
    assert all(f"below 4.5: {name}:" in err for name in CLIPS) and "2 clip(s) scored below 4.5" in err


def test_segment_layout_change_is_a_regression():
    seg = lambda a, b, s: {"start_frame": a, "end_frame": b, "start_time": a / 25, "end_time": b / 25,  # noqa: E731
                           "score": s}
    old = {"path": "x.mp4", "score": 3.0, "timeline": [seg(0, 25, 3.0), seg(25, 50, 3.0)]}
    new = {"path": "x.mp4", "score": 3.0, "timeline": [seg(0, 25, 3.0)]}
    d = compare_clip(old, new, Tolerances())
    assert d.status == "regression" and "segments differ" in d.reasons[0]
    new = {**old, "score": 2.95, "timeline": [seg(0, 25, 3.0), seg(25, 50, 2.9)]}
    d = compare_clip(old, new, Tolerances(max_drop=0.1, max_segment_drop=0.05))
    assert d.status == "regression" and d.worst_segment == 1 and d.worst_segment_delta == pytest.approx(-0.1)
    assert compare_clip(old, new, Tolerances(max_drop=0.1, max_segment_drop=0.2)).status == "pass"
    with pytest.raises(ValueError):
        Tolerances(max_drop=-1)


def test_load_records_rejects_other_json(tmp_path):
    from vqametric.errors import InvalidBaseline
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InvalidBaseline, match="neither a vqametric baseline"):
        load_records(tmp_path / "x.json")
