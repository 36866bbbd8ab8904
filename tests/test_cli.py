"""The command line: score (table/json/csv, failures reported, exit codes), info, models."""
import csv
import json

import pytest

from vqametric.cli import main


def test_score_json_and_failure_keeps_going(tiny_head_files, sample_mp4, tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    out = tmp_path / "scores.json"
    rc = main(["score", sample_mp4, str(bad), str(tmp_path / "missing.mp4"), sample_mp4,
               "--model", tiny_head_files["onnx"], "--format", "json", "--output", str(out)])
    assert rc == 1
    rows = json.loads(out.read_text())
    assert len(rows) == 3  # a path given twice is scored once
    assert 1 <= rows[0]["score"] <= 5
    assert rows[1]["error"] == "VideoDecodeError" and "not a video" in rows[1]["message"]
    assert rows[2]["error"] == "InvalidVideoInput" and "no such file" in rows[2]["message"]
    err = capsys.readouterr().err
    assert "2 of 3 file(s) failed" in err


def test_score_csv_and_table(tiny_head_files, sample_mp4, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["score", sample_mp4, "--model", tiny_head_files["onnx"], "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["source"] == sample_mp4 and 1 <= float(rows[0]["score"]) <= 5 and rows[0]["frames"] == "30"
    assert main(["score", sample_mp4, "--model", tiny_head_files["onnx"], "--runtime", "torch"]) == 0
    table = capsys.readouterr().out
    assert "dominant_distortion" in table and "tiny-test-head" in table


def test_unknown_model_is_an_error(sample_mp4, capsys):
    assert main(["score", sample_mp4, "--model", "no-such-model"]) == 1
    assert "no model named 'no-such-model'" in capsys.readouterr().err


def test_info_and_models(sample_mp4, tmp_path, capsys):
    assert main(["info", sample_mp4, "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)[0]
    assert (info["width"], info["height"], info["num_frames"], info["codec"]) == (128, 72, 30, "h264")
    assert main(["info", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert main(["models", "--format", "json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["score"])
    assert e.value.code == 2
