"""Reliability findings: each test reproduces one input that used to crash, hang, allocate without
bound or score silently wrong, and checks the typed error or the correct behaviour instead."""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np
import pytest
import torch
from media import moving_frames, write_video

import vqametric
from vqametric import (InvalidOption, InvalidVideoInput, QualityResult, RGBFrames, VideoDecodeError,
                       VQAThinkerMetric, YUV420Frames)
from vqametric.backends import fast
from vqametric.cli import main as cli

CLIP = torch.from_numpy(moving_frames(8, 48, 64)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W) uint8


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A good MP4, a good MKV (VP9), and copies whose codec tags name no codec FFmpeg knows."""
    d = tmp_path_factory.mktemp("codec")
    good = write_video(d / "good.mp4", moving_frames(12, 48, 64), fps=25)
    mkv = write_video(d / "good.mkv", moving_frames(12, 48, 64), fps=25, codec="libvpx-vp9")
    bad_mp4, bad_mkv = d / "bad.mp4", d / "bad.mkv"
    bad_mp4.write_bytes(open(good, "rb").read().replace(b"avc1", b"zzzz"))
    bad_mkv.write_bytes(open(mkv, "rb").read().replace(b"V_VP9", b"V_ZZZ"))
    return {"good": str(good), "mkv": str(mkv), "bad_mp4": str(bad_mp4), "bad_mkv": str(bad_mkv)}


# -- 1. an unknown codec: a typed error, and the batch goes on ------------------------------------
@pytest.mark.parametrize("name", ["bad_mp4", "bad_mkv"])
def test_unknown_codec_is_a_typed_decode_error(clips, name):
    with pytest.raises(VideoDecodeError, match="codec is unknown"):
        vqametric.score(clips[name])


def test_cli_batch_goes_on_past_an_unknown_codec(clips, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code = cli(["score", clips["good"], clips["bad_mkv"], clips["mkv"], "--format", "csv", "-o", str(out), "-q"])
    assert code == 1
    rows = list(csv.DictReader(open(out)))
    assert [r["source"] for r in rows] == [clips["good"], clips["bad_mkv"], clips["mkv"]]
    assert rows[0]["score"] and rows[2]["score"] and not rows[1]["score"]
    assert rows[1]["error"].startswith("VideoDecodeError")


def test_cli_reports_unexpected_failures_per_file(clips, tmp_path, monkeypatch):
    """Even a failure that is not one of vqametric's errors is reported for its file only."""
    real = fast.FastScorer.prepare

    def flaky(self, video, *args, **kwargs):
        if str(video).endswith(".mkv"):
            raise KeyError("something unforeseen")
        return real(self, video, *args, **kwargs)
    monkeypatch.setattr(fast.FastScorer, "prepare", flaky)
    out = tmp_path / "scores.json"
    assert cli(["score", clips["good"], clips["mkv"], "--format", "json", "-o", str(out), "-q"]) == 1
    records = json.loads(out.read_text())
    assert records[0]["score"] is not None and records[1]["error"] == "KeyError"


# -- 3. memory flat in batch size: clips one by one, segments in chunks ---------------------------
def test_batches_go_through_the_head_in_chunks(monkeypatch):
    scorer = vqametric.functional.get_scorer()
    calls = []
    real = scorer.model.__call__

    def counting(frag, glob):
        calls.append(frag.shape[0])
        return real(frag, glob)
    one = vqametric.score(CLIP).score
    monkeypatch.setattr(scorer, "model", type("M", (), {"__call__": staticmethod(counting)})())
    results = vqametric.score([CLIP] * 6)
    assert [r.score for r in results] == [one] * 6
    assert len(calls) == 6 and max(calls) <= fast.HEAD_CHUNK


def test_a_long_clip_is_chunked_by_segments(monkeypatch):
    scorer = vqametric.functional.get_scorer()
    monkeypatch.setattr(fast, "HEAD_CHUNK", 3)
    chunked = scorer.score([CLIP])[1][0]
    monkeypatch.setattr(fast, "HEAD_CHUNK", 1000)
    whole = scorer.score([CLIP])[1][0]
    assert len(whole.timeline) > 3
    assert chunked.score == pytest.approx(whole.score, abs=1e-6)


# -- 5. RGBFrames and YUV420Frames validate on construction ---------------------------------------
X = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8)


@pytest.mark.parametrize("data, phrase", [
    (X.float(), "looks like 0-255 data"),
    (X.to(torch.int32), "dtype torch.int32"),
    (X.bool(), "dtype torch.bool"),
    (torch.rand(8, 64, 64, 3) * 10 - 5, "outside the declared range"),
    (torch.full((2, 8, 8, 3), float("nan")), "NaN or Inf"),
    (X[0], "expected (T, H, W, 3)"),
    (torch.zeros(2, 8, 8, 4, dtype=torch.uint8), "3 (RGB) channels last"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "channels-first"),
    (X.numpy(), "torch.from_numpy"),
    (torch.zeros(0, 8, 8, 3, dtype=torch.uint8), "zero frames"),
    (torch.zeros(2, 8, 8, 3, device="meta"), "meta tensor"),
])
def test_rgbframes_are_validated(data, phrase):
    with pytest.raises(InvalidVideoInput) as e:
        RGBFrames(data)
    assert phrase in str(e.value)


def test_a_failed_update_with_bad_rgbframes_leaves_the_metric_as_it_was():
    m = VQAThinkerMetric()
    m.update(CLIP)
    before = float(m.compute())
    with pytest.raises(InvalidVideoInput):
        m.update(RGBFrames(X.float()))
    assert float(m.compute()) == before


def test_valid_rgbframes_score_like_the_tensor():
    frames = CLIP.permute(0, 2, 3, 1).contiguous()
    assert vqametric.score(RGBFrames(frames)).score == vqametric.score(CLIP).score
    assert vqametric.score(RGBFrames(frames.float() / 255)).score == pytest.approx(vqametric.score(CLIP).score, abs=1e-3)


@pytest.mark.parametrize("kwargs, phrase", [
    ({"bit_depth": 10.5}, "bit_depth must be an integer"),
    ({"bit_depth": "10"}, "bit_depth must be an integer"),
    ({"bit_depth": True}, "bit_depth must be an integer"),
    ({"full_range": "no"}, "full_range must be True"),
    ({"matrix": 709}, "unknown colour matrix"),
])
def test_yuv_arguments_are_validated(kwargs, phrase):
    y, uv = torch.zeros(2, 8, 8, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8)
    with pytest.raises(InvalidVideoInput, match=phrase):
        YUV420Frames(y, uv, uv, **kwargs)


def test_sparse_yuv_plane_is_refused():
    y, uv = torch.zeros(2, 8, 8, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8)
    with pytest.raises(InvalidVideoInput, match="to_dense"):
        YUV420Frames(y.to_sparse(), uv, uv)


# -- 6. fork after scoring ----------------------------------------------------------------------
FORK_SCRIPT = r"""
import multiprocessing, torch, vqametric
clip = torch.randint(0, 256, (8, 3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
def child(c):
    return vqametric.score(c).score
if __name__ == "__main__":
    want = vqametric.score(clip).score          # the parent has run torch's and ONNX Runtime's thread pools
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(child, (clip,)).get(timeout=120)
    print(abs(got - want) < 1e-6)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_pool_scores_after_the_parent_scored(tmp_path):
    """In a fresh process (the test runner's own threads would make any fork unsafe)."""
    import subprocess
    import sys
    script = tmp_path / "fork_after_scoring.py"
    script.write_text(FORK_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


# -- 7. minor raw errors and misleading messages --------------------------------------------------
def test_negative_stride_numpy_view_scores():
    a = np.ascontiguousarray(moving_frames(1, 64, 64))[::-1]
    assert 1.0 <= vqametric.score(a).score <= 5.0


def test_sparse_and_meta_tensors_are_refused():
    with pytest.raises(InvalidVideoInput, match="to_dense"):
        vqametric.score(CLIP.float().div(255).to_sparse())
    with pytest.raises(InvalidVideoInput, match="meta tensor"):
        vqametric.score(torch.zeros(4, 3, 16, 16, device="meta"))


def test_huge_float64_values_are_out_of_range_not_inf():
    a = np.zeros((2, 16, 16, 3), np.float64)
    a[0, 0, 0, 0] = 1e300
    with pytest.raises(InvalidVideoInput, match="outside the declared range"):
        vqametric.score(a)


@pytest.mark.parametrize("fps", ["abc", 1e-320, float("inf"), -1.0, 0, True, [30]])
def test_bad_fps_is_typed(fps):
    with pytest.raises(InvalidVideoInput, match="fps must be"):
        vqametric.score(CLIP, fps=fps)


def test_unknown_device_is_a_typed_option_error():
    with pytest.raises(InvalidOption, match="device='gpu9'"):
        vqametric.score(CLIP, device="gpu9")
    with pytest.raises(InvalidOption, match="runtime must be"):
        vqametric.score(CLIP, runtime="tensorrt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_not_reported_as_empty(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InvalidVideoInput, match="not a regular file"):
        vqametric.score(str(fifo))


def test_json_is_strict():
    r = QualityResult(score=3.0, model="m", clip={"duration": float("inf"), "fps": float("nan")})
    d = json.loads(r.to_json())  # the standard parser; strict parsers reject Infinity and NaN
    assert d["clip"]["duration"] is None and d["clip"]["fps"] is None
    assert d["null_reasons"] == {"clip.duration": "inf", "clip.fps": "nan"}
    json.loads(r.to_json(), parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    unparsed = QualityResult(score=math.nan, model="m", parse_ok=False).to_dict()
    assert unparsed["score"] is None and "null_reasons" not in unparsed


def test_cli_json_output_is_strict(clips, tmp_path):
    out = tmp_path / "s.json"
    assert cli(["score", clips["good"], "--format", "json", "-o", str(out), "-q"]) == 0
    json.load(io.StringIO(out.read_text()), parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))


# -- 2 and 4. a pixel budget: huge frames refused before decoding, elongated frames bounded -------
def test_frames_above_max_pixels_are_refused_before_any_decoding(clips, monkeypatch):
    from vqametric.io.decode import FileClip

    def no_decoding(self, position):
        raise AssertionError("a picture was decoded")
    monkeypatch.setattr(FileClip, "_decode_from", no_decoding)
    with pytest.raises(vqametric.FrameTooLarge, match=r"64x48 frames \(3,072 pixels\), above the limit of 3,071 pixels.* --max-pixels"):
        vqametric.score(clips["good"], max_pixels=64 * 48 - 1)
    monkeypatch.setenv("VQAMETRIC_MAX_PIXELS", "1000")
    with pytest.raises(vqametric.FrameTooLarge, match="above the limit"):
        vqametric.score(clips["good"])
    with pytest.raises(vqametric.FrameTooLarge):
        vqametric.score(CLIP)  # in-memory frames obey the same limit


def test_max_pixels_admits_what_fits_and_rejects_nonsense(clips, monkeypatch):
    assert vqametric.score(clips["good"], max_pixels=64 * 48).score == vqametric.score(clips["good"]).score
    for bad in (0, -5, 2.5, "many"):
        with pytest.raises(InvalidOption, match="max_pixels must be a positive whole number"):
            vqametric.score(clips["good"], max_pixels=bad)
    monkeypatch.setenv("VQAMETRIC_MAX_PIXELS", "lots")
    with pytest.raises(InvalidOption, match="VQAMETRIC_MAX_PIXELS"):
        vqametric.score(clips["good"])


def test_cli_max_pixels(clips, tmp_path):
    out = tmp_path / "s.csv"
    assert cli(["score", clips["good"], "--max-pixels", "100", "--format", "csv", "-o", str(out), "-q"]) == 1
    assert list(csv.DictReader(open(out)))[0]["error"].startswith("FrameTooLarge")


def test_elongated_frames_are_not_upscaled_without_bound():
    from vqametric.sampling.plan import fragment_plan
    assert fragment_plan(16, 10000, 7, 32, 0).resize_to == (224, 10000)
    assert fragment_plan(10000, 16, 7, 32, 0).resize_to == (10000, 224)
    assert fragment_plan(1, 100000, 7, 32, 0).resize_to == (224, 100000)
    assert fragment_plan(120, 160, 7, 32, 0).resize_to == (224, 299)  # ordinary small frames: as before
    assert fragment_plan(20, 1000, 7, 32, 0).resize_to == (224, 1792)


def test_elongated_clip_scores(tmp_path):
    path = write_video(tmp_path / "wide.mp4", moving_frames(6, 16, 2000), fps=25)
    assert 1.0 <= vqametric.score(path).score <= 5.0


def test_streamed_decoding_holds_a_few_frames_and_gives_the_same_views(tmp_path, monkeypatch):
    from vqametric.backends.planned import read_planned
    from vqametric.io import decode
    from vqametric.sampling import preprocess_reference

    path = write_video(tmp_path / "long.mp4", moving_frames(60, 48, 64), fps=25, options={"g": "12"})
    sampling = vqametric.get_card("vqametric-fast").sampling
    views = lambda plan, s, frames: preprocess_reference(frames, plan)  # noqa: E731
    kept = {overlap: read_planned(path, sampling, chunk_fn=views, chunk=1, overlap=overlap) for overlap in (True, False)}
    held, real = [], decode._FrameSink.put

    def put(self, i, frame):
        real(self, i, frame)
        held.append(len(self.held))
    monkeypatch.setattr(decode._FrameSink, "put", put)
    for overlap in (True, False):
        held.clear()
        streamed = read_planned(path, sampling, chunk_fn=views, chunk=1, keep_frames=False, overlap=overlap)
        assert streamed.frames is None and len(held) == len(set(streamed.plan.frame_indices))
        assert max(held) <= 2 + 4  # DECODE_LEAD frames handed over, one being taken, one just decoded
        for a, b in zip(kept[overlap].chunk_outputs, streamed.chunk_outputs):
            assert all(torch.equal(a[k], b[k]) for k in a)


# -- CLI start-up: light commands load no torch -----------------------------------------------------
def test_import_and_light_commands_do_not_load_torch():
    import subprocess
    import sys
    code = ("import sys, vqametric, vqametric.cli as c; p = c.build_parser(); "
            "[p.parse_args(a) for a in (['models'], ['score', 'x.mp4'])]; c.main(['models']); "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
