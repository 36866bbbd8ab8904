"""vqametric rd: Bjontegaard deltas checked against reference values, monotonicity, the command."""
import json

import numpy as np
import pytest

from media import moving_frames, write_video
from vqametric.cli import main
from vqametric.fullref import VmafUnavailable, ffmpeg_with_vmaf
from vqametric.regression.rd import RDPoint, bd_deltas, monotonicity

bd = pytest.importorskip("bjontegaard")

# the bjontegaard package's own example data (x265 presets; rate kbit/s, PSNR dB)
RATE_A, PSNR_A = [9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851]
RATE_T, PSNR_T = [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987]


def _points(curve, rates, scores, sequence="s"):
    return [RDPoint(sequence, curve, f"{curve}{i}.mp4", r, q) for i, (r, q) in enumerate(zip(rates, scores))]


def _vceg_m33(r0, q0, r1, q1):
    """BD-rate (%) as VCEG-M33 defines it: cubic fits of log10 rate over quality, integrated over
    the shared quality range."""
    p0, p1 = np.polyfit(q0, np.log10(r0), 3), np.polyfit(q1, np.log10(r1), 3)
    lo, hi = max(min(q0), min(q1)), min(max(q0), max(q1))
    i0, i1 = np.polyint(p0), np.polyint(p1)
    avg = (np.polyval(i1, hi) - np.polyval(i1, lo) - np.polyval(i0, hi) + np.polyval(i0, lo)) / (hi - lo)
    return (10 ** avg - 1) * 100


def test_bd_rate_matches_reference_values():
    pts = _points("anchor", RATE_A, PSNR_A) + _points("test", RATE_T, PSNR_T)
    (cubic,) = bd_deltas(pts, "anchor", "cubic")
    assert cubic["bd_rate"] == pytest.approx(_vceg_m33(RATE_A, PSNR_A, RATE_T, PSNR_T), abs=1e-9)
    assert cubic["bd_rate"] < 0 and cubic["bd_quality"] > 0  # the test encodes are better: fewer bits, higher quality
    for method in ("pchip", "akima"):
        (d,) = bd_deltas(pts, "anchor", method)
        assert d["bd_rate"] == pytest.approx(bd.bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, method=method), abs=1e-12)
        assert abs(d["bd_rate"] - cubic["bd_rate"]) < 1.0  # the interpolations agree within a point on smooth data


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
def test_exact_answers_for_shifted_curves(method):
    rates, scores = [200.0, 400.0, 800.0, 1600.0], [2.1, 2.9, 3.6, 4.1]
    pts = _points("a", rates, scores) + _points("ten_percent_fewer_bits", [0.9 * r for r in rates], scores) + \
        _points("a_tenth_better", rates, [q + 0.1 for q in scores])
    d = {row["curve"]: row for row in bd_deltas(pts, "a", method)}
    assert d["ten_percent_fewer_bits"]["bd_rate"] == pytest.approx(-10.0, abs=1e-9)
    assert d["a_tenth_better"]["bd_quality"] == pytest.approx(0.1, abs=1e-9)


def test_monotonicity_and_unusable_curves():
    pts = _points("a", [100, 200, 300, 400], [2.0, 2.5, 2.4, 3.0]) + _points("b", [100, 200], [2.0, 2.6]) + \
        _points("c", [150, 300], [2.2, 2.9], sequence="other")
    mono = {(m["sequence"], m["curve"]): m for m in monotonicity(pts)}
    assert (mono[("s", "a")]["violations"], mono[("s", "a")]["steps"]) == (1, 3)
    assert mono[("s", "b")]["violations"] == 0
    rows = {(r["sequence"], r["curve"]): r for r in bd_deltas(pts, "a")}
    assert rows[("s", "b")]["bd_rate"] is None
    assert "score does not rise strictly with rate on a" in rows[("s", "b")]["note"]
    assert rows[("other", "c")]["note"] == "sequence 'other' has no 'a' curve"


def test_rd_command(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.chdir(tmp_path)
    frames = moving_frames(50, 128, 192)  # room above the floor of 1 for each CRF step
    write_video("source.mp4", frames, fps=25, options={"qp": "0"})  # lossless
    rows = ["path,sequence,curve,reference"]
    for preset in ("ultrafast", "medium"):
        for crf in (20, 26, 32, 38):
            write_video(f"{preset}{crf}.mp4", frames, fps=25, options={"crf": str(crf), "preset": preset})
            rows.append(f"{preset}{crf}.mp4,pan,{preset},source.mp4")
    (tmp_path / "rd.csv").write_text("\n".join(rows) + "\n")
    try:
        ffmpeg_with_vmaf()
        full = ["--reference"]
    except VmafUnavailable:
        full = []
    assert main(["rd", "rd.csv", "--json", "rd.json", "--plot", "rd.png", *full]) == 0
    out = capsys.readouterr().out
    assert "BD-rate (pchip)" in out and "falls as rate rises" in out
    report = json.loads((tmp_path / "rd.json").read_text())
    bd_rows = {r["metric"]: r for r in report["bd"]}
    row = bd_rows["score"]
    assert row["curve"] == "medium" and row["anchor"] == "ultrafast"
    assert row["bd_rate"] < 0  # the slower preset needs fewer bits for the same score
    if full:
        assert set(bd_rows) == {"score", "vmaf", "psnr_y", "ssim"}
        assert bd_rows["psnr_y"]["bd_rate"] < 0
        vmaf = [p["metrics"]["vmaf"] for p in report["points"] if p["curve"] == "ultrafast"]
        assert vmaf == sorted(vmaf, reverse=True) and 0 < vmaf[-1] < vmaf[0] <= 100  # CRF 20 .. 38
    assert len(report["points"]) == 8 and all(p["bitrate_kbps"] > 0 for p in report["points"])
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "bad.csv").write_text("path,curve\nx.mp4,a\n")
    assert main(["rd", "bad.csv"]) == 2
    assert "needs path, sequence and curve" in capsys.readouterr().err
