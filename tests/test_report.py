"""``vqametric report``: one self-contained HTML file of results (JSON or JSON Lines in), checked as
text and, where Chromium is installed, in a headless browser (sorting, filtering, thumbnails, no
script errors, screenshots)."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from media import moving_frames, write_video

from vqametric import QualityResult
from vqametric.cli import main
from vqametric.report import read_inputs, render_report, write_report
from vqametric.result import SegmentScore

def _result(source, score, seg_scores, distortion="blur", fps=25.0, seg_frames=12):
    tl = [SegmentScore(i * seg_frames, (i + 1) * seg_frames, i * seg_frames / fps, (i + 1) * seg_frames / fps, s,
                       distortion if s == min(seg_scores) else "none") for i, s in enumerate(seg_scores)]
    planned = [i * seg_frames + seg_frames // 2 + k for i in range(len(seg_scores)) for k in range(2)]
    attribution = {"blur": 0.7 if distortion == "blur" else 0.1, "noise": 0.3, "black": 0.9 if distortion == "black"
                   else 0.0}
    return QualityResult(score, "vqametric-fast", "1.0.0", source, timeline=tl, attribution=attribution,
                         dominant_distortion=distortion,
                         sampling={"frame_indices": planned, "frames_per_segment": 2, "global_size": 224},
                         clip={"num_frames": seg_frames * len(seg_scores), "fps": fps},
                         timings={"total": 0.5 + score / 10})


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Three scored clips on disk (one with a black second), one whose file is gone, one failure and one
    unparsed answer, as the dicts ``vqametric score --format json`` writes."""
    folder = tmp_path_factory.mktemp("report")
    frames = moving_frames(48, 72, 128, seed=1)
    write_video(folder / "pan.mp4", frames)
    dark = frames.copy()
    dark[24:36] = 0
    write_video(folder / "black.mp4", dark)
    write_video(folder / "small.mp4", moving_frames(48, 64, 96, seed=2))
    recs = [_result(str(folder / "pan.mp4"), 3.9, [4.0, 3.8, 3.95, 3.9]).to_dict(),
            _result(str(folder / "black.mp4"), 2.2, [3.4, 3.3, 1.1, 3.2], "black").to_dict(),
            _result("small.mp4", 4.6, [4.5, 4.7, 4.6, 4.6], "none").to_dict(),  # relative to the input's folder
            _result(str(folder / "gone.mp4"), 3.0, [3.1, 2.9]).to_dict(),
            {"source": "broken.mp4", "error": "InvalidVideoInput", "message": "no video stream in 'broken.mp4'"},
            {**QualityResult(float("nan"), "vqathinker-8b", "1", "odd.mp4", parse_ok=False,
                             sampling={"generation": {"failure": "no <answer> tag"}}).to_dict()}]
    (folder / "results.json").write_text(json.dumps(recs, indent=2))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return folder, recs


@pytest.fixture(scope="module")
def report(records):
    folder, _ = records
    out = folder / "report.html"
    assert main(["report", str(folder / "results.json"), "-o", str(out), "-q"]) == 0
    return out.read_text(encoding="utf-8")


def test_self_contained(report):
    fetched = re.findall(r"""(?:src|href|action|poster)\s*=\s*["']?([^"'\s>]+)""", report, re.I)
    assert fetched and all(u.startswith(("data:", "#")) for u in fetched), fetched
    assert not re.search(r"url\(\s*['\"]?(?!data:)", report) and "@import" not in report
    assert "<link" not in report and not re.search(r"<script[^>]+src", report)
    # the only http text is the SVG namespace, which browsers never fetch
    assert set(re.findall(r"https?://[^\s\"'<>]+", report)) == {"http://www.w3.org/2000/svg"}


def test_every_clip_metadata_and_failures(records, report):
    _, recs = records
    for i, r in enumerate(recs):
        assert f'id="clip-{i}"' in report and os.path.basename(r["source"]) in report
    assert report.count('<div class="clip') == len(recs)
    meta = report[report.index('id="meta"'):report.index("</dl>")]
    for text in ("vqametric-fast", "vqathinker-8b", "frames_per_segment 2", "<dt>clips</dt><dd>6</dd>",
                 "<dt>failures</dt><dd>2</dd>", "UTC"):
        assert text in meta
    failures = report[report.index('id="failures"'):]
    failures = failures[:failures.index("</table>")]
    assert "broken.mp4" in failures and "no video stream in &#x27;broken.mp4&#x27;" in failures
    assert "odd.mp4" in failures and "no &lt;answer&gt; tag" in failures
    assert report.count('<img class="thumb"') == 6  # worst and best of the three clips on disk
    assert report.count("source file not found") == 2  # gone.mp4: worst and best
    assert "Quality drops at 1.0-1.4 s" in report  # the explanation of black.mp4
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="histogram"' in report


def test_json_lines_and_objects_give_the_same_rows(records, tmp_path):
    folder, recs = records
    rows_json, _ = read_inputs([folder / "results.json"])
    rows_jsonl, _ = read_inputs([folder / "results.jsonl"])
    assert [(e.source, e.status) for e in rows_json] == [(e.source, e.status) for e in rows_jsonl]
    assert [e.status for e in rows_json] == ["ok"] * 4 + ["failed", "no score"]
    assert main(["report", str(folder / "results.jsonl"), "-o", str(tmp_path / "l.html"), "-q",
                 "--no-thumbnails"]) == 0
    assert (tmp_path / "l.html").read_text().count("thumbnails not made") == 8
    text = render_report([_result("x.mp4", 3.0, [3.0])], thumbnails=False)
    assert 'id="clip-0"' in text and "x.mp4" in text
    path = write_report(recs[:1], tmp_path / "one.html")
    assert open(path, encoding="utf-8").read().count('<img class="thumb"') == 2


def test_bad_input(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"model": "m", "score": 3}\n{oops\n')
    assert main(["report", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "r.html")]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
    (tmp_path / "x.json").write_text('[{"source": "a"}]')
    assert main(["report", str(tmp_path / "x.json"), "-o", str(tmp_path / "r.html")]) == 1


def test_text_is_escaped():
    evil = '<img src=x onerror="alert(1)">.mp4'
    text = render_report([{"source": evil, "error": "E<b>", "message": "</td><script>alert(2)</script>"},
                          _result(evil, 3.0, [3.0, 2.0], distortion="<i>")], thumbnails=False)
    assert "<script>alert" not in text and 'onerror="' not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.mp4" in text and "E&lt;b&gt;" in text


def test_rd_report(tmp_path):
    rd = {"kind": "vqametric-rd-report", "schema_version": 1, "method": "pchip",
          "points": [{"sequence": "s", "curve": c, "path": f"{c}{k}.mp4", "bitrate_kbps": r, "score": q, "metrics": {}}
                     for c, off in (("x264", 0.0), ("x265", 0.3)) for k, (r, q) in
                     enumerate([(500, 2.0 + off), (1000, 3.0 + off), (2000, 3.8 + off)])],
          "monotonicity": [{"sequence": "s", "curve": "x265", "metric": "score", "points": 3, "steps": 2,
                            "violations": 1}],
          "bd": [{"sequence": "s", "curve": "x265", "anchor": "x264", "metric": "score", "bd_rate": -21.5,
                  "bd_quality": 0.3, "note": None}]}
    (tmp_path / "rd.json").write_text(json.dumps(rd))
    assert main(["report", str(tmp_path / "rd.json"), "-o", str(tmp_path / "r.html"), "-q"]) == 0
    text = (tmp_path / "r.html").read_text()
    assert 'class="rd"' in text and text.count("<polyline") == 2 and "-21.50%" in text and "1 of 2 step(s)" in text


# ------------------------------------------------------------------------------------------------
# in a browser

HARNESS_HEAD = """<script>window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });</script>"""
HARNESS_TAIL = r"""<script>window.addEventListener("load", function () {
  var out = {};
  try {
    var table = document.getElementById("clips"), heads = table.tHead.rows[0].cells;
    var column = function (i) { return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[i].textContent; }); };
    heads[1].click(); out.asc = column(1);
    heads[1].click(); out.desc = column(1);
    heads[0].click(); out.sources = column(0);
    var filter = document.getElementById("filter");
    filter.value = "black"; filter.dispatchEvent(new Event("input"));
    out.filtered = Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; })
      .map(function (r) { return r.cells[0].textContent; });
    out.shown = document.getElementById("shown").textContent;
    out.clips = Array.prototype.map.call(document.querySelectorAll("#details .clip"), function (c) {
      return {id: c.id, failed: c.classList.contains("failed"),
              timeline: c.querySelectorAll("svg rect").length,
              thumbs: Array.prototype.map.call(c.querySelectorAll("img.thumb"), function (i) {
                return i.complete ? i.naturalWidth : -1; }),
              missing: c.querySelectorAll(".thumb-missing").length}; });
  } catch (e) { window.__errors.push("harness: " + e); }
  out.errors = window.__errors;
  var pre = document.createElement("pre"); pre.id = "test-results";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def _chromium():
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _run_browser(browser, args, tmp_path):
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_in_browser(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium installed (apt-get install chromium)")
    page = report.replace("</head>", HARNESS_HEAD + "</head>", 1).replace("</body>", HARNESS_TAIL + "</body>", 1)
    (tmp_path / "test.html").write_text(page, encoding="utf-8")
    run = _run_browser(browser, ["--virtual-time-budget=5000", "--dump-dom", (tmp_path / "test.html").as_uri()],
                       tmp_path)
    found = re.search(r'<pre id="test-results">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    out = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                     .replace("&amp;", "&"))
    assert out["errors"] == []
    scores = [float(s) for s in out["asc"] if s]
    assert scores == sorted(scores) == [2.2, 3.0, 3.9, 4.6] and out["asc"][-2:] == ["", ""]  # missing ones last
    assert [float(s) for s in out["desc"] if s] == scores[::-1]
    assert out["sources"] == sorted(out["sources"], key=str.lower)
    assert out["filtered"] == [s for s in out["sources"] if "black" in s] and out["shown"] == "1 of 6"
    assert len(out["clips"]) == 6
    for clip in out["clips"]:
        if clip["failed"]:
            continue
        if clip["id"] != "clip-5":  # the unparsed answer has no timeline
            assert clip["timeline"] >= 2, clip
        assert clip["thumbs"] or clip["missing"], clip
        assert all(w > 0 for w in clip["thumbs"]), clip  # every thumbnail decodes
    assert sum(len(c["thumbs"]) for c in out["clips"]) == 6


def test_screenshot(records, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium installed (apt-get install chromium)")
    folder, recs = records
    shown = [r for r in recs if "gone" not in r["source"]][:5]
    page = tmp_path / "shot.html"
    write_report(shown, page, folder=str(folder))
    target = tmp_path / "report.png"
    run = _run_browser(browser, ["--window-size=1000,1500", "--virtual-time-budget=3000",
                                 f"--screenshot={target}", page.as_uri()], tmp_path)
    assert os.path.exists(target), run.stderr[-2000:]
    data = open(target, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data)
    assert np.frombuffer(data[16:24], ">u4").tolist() == [1000, 1500]
