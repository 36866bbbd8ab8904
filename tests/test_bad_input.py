"""Bad and borderline input.

Bad input raises a typed error from :mod:`vqametric.errors` whose message names the problem and the
fix (each test checks the type and a key phrase). Borderline input that is still valid video must
score fine: a finite score in [1, 5].
"""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import warnings

import av
import numpy as np
import pytest
import torch
from media import (frame_index, indexed_frames, moving_frames, truncated_copy, write_audio_only,
                   write_empty_video, write_video)

import vqametric
from vqametric import InvalidVideoInput, VideoDecodeError, VQAThinkerMetric, YUV420Frames, open_clip

CLIP = torch.from_numpy(moving_frames(8, 48, 64)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W) uint8


@pytest.fixture(scope="module")
def score(tiny_head_files):
    """``score(video)`` with the tiny head; checks every score is finite and in [1, 5]."""
    def run(video, **kwargs):
        result = vqametric.score(video, model=tiny_head_files["onnx"], **kwargs)
        for r in result if isinstance(result, list) else [result]:
            assert math.isfinite(r.score) and 1.0 <= r.score <= 5.0
        return result
    return run


def fails(score, video, error, phrase):
    with pytest.raises(error) as e:
        score(video)
    assert phrase in str(e.value)
    return e.value


# -- files that are not (whole) videos ----------------------------------------------------------
def test_missing_path(score, tmp_path):
    fails(score, str(tmp_path / "nope.mp4"), InvalidVideoInput, "no such file")


def test_directory(score, tmp_path):
    fails(score, tmp_path, InvalidVideoInput, "is a directory; pass a video file")


def test_empty_file_bytes_and_file_object(score, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    fails(score, str(tmp_path / "empty.mp4"), InvalidVideoInput, "is empty (0 bytes)")
    fails(score, b"", InvalidVideoInput, "empty")
    fails(score, io.BytesIO(), InvalidVideoInput, "empty")


def test_text_mode_file_object(score, sample_mp4):
    with open(sample_mp4, encoding="latin-1") as fh:  # text mode: the mistake under test
        fails(score, fh, InvalidVideoInput, "open the video in binary mode")


def test_text_file_named_mp4(score, tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    fails(score, str(path), VideoDecodeError, "not a video file")


def test_audio_only_file(score, tmp_path):
    path = write_audio_only(tmp_path / "voice.m4a")
    fails(score, path, InvalidVideoInput, "has no video stream (only audio streams)")


@pytest.mark.parametrize("ext,codec", [("y4m", "rawvideo"), ("avi", "mpeg4")])
def test_stream_with_zero_frames(score, tmp_path, ext, codec):
    path = write_empty_video(tmp_path / f"empty.{ext}", codec=codec)
    with av.open(path) as c:
        assert len(c.streams.video) == 1  # the stream is declared...
    fails(score, path, InvalidVideoInput, "zero frames; pass a video with at least one frame")  # ...but empty


def test_mp4_with_an_empty_track(score, tmp_path):
    """FFmpeg drops an MP4 track without samples, so this reads as a file without video."""
    path = write_empty_video(tmp_path / "empty.mp4")
    fails(score, path, InvalidVideoInput, "has no video stream (no streams")


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory):
    """30 indexed frames as MP4, with the index (``moov``) at the end and at the start."""
    d = tmp_path_factory.mktemp("truncated")
    frames = indexed_frames(30, 64, 96)
    fast = {"container_options": {"movflags": "faststart"}}
    return {"moov-at-end": write_video(d / "end.mp4", frames),
            "faststart": write_video(d / "start.mp4", frames, **fast),
            "faststart-bframes": write_video(d / "start-b.mp4", frames, options={"preset": "medium"}, **fast)}


def test_truncated_mp4_with_moov_at_end(score, mp4s, tmp_path):
    with open(mp4s["moov-at-end"], "rb") as f:
        assert f.read().rfind(b"moov") > 1000  # the index really is at the end
    cut = truncated_copy(mp4s["moov-at-end"], tmp_path / "cut.mp4")
    fails(score, cut, VideoDecodeError, "truncated or corrupt")
    with open(cut, "rb") as f:
        fails(score, f.read(), VideoDecodeError, "truncated or corrupt")


@pytest.mark.parametrize("kind", ["faststart", "faststart-bframes"])
@pytest.mark.parametrize("fraction", [0.5, 0.8])
def test_truncated_mp4_with_moov_at_start_scores_its_complete_frames(score, mp4s, tmp_path, kind, fraction):
    """The policy: the frames whose data is complete are the clip, with a warning; metadata,
    decoding and scoring agree on them."""
    with open(mp4s[kind], "rb") as f:
        assert f.read().find(b"moov") < 100
    cut = truncated_copy(mp4s[kind], tmp_path / "cut.mp4", fraction)
    with pytest.warns(RuntimeWarning, match="is truncated: only its first"):
        with open_clip(cut) as clip:
            n = clip.info.num_frames
            assert 0 < n < 30
            assert len(clip.info.timestamps) == n
            got = [frame_index(f) for f in clip.read(range(n)).y.numpy()]
    assert got == sorted(got) and len(set(got)) == n and got[0] == 0  # real, distinct frames in order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = score(cut)
    assert result.clip["num_frames"] == n


def test_truncated_before_the_first_frame_completes(score, mp4s, tmp_path):
    with open(mp4s["faststart-bframes"], "rb") as f:
        data = f.read()
    mdat = data.find(b"mdat") + 4
    fails(score, data[:mdat + 100], VideoDecodeError, "truncated before the end of its first frame")


# -- valid but unusual video: must score fine ---------------------------------------------------
def _gray(n, h, w):
    return moving_frames(n, h, w).mean(-1).astype(np.uint8)


# (file name, frames, write_video arguments, expected (width, height))
ODD_BUT_VALID = [
    ("one-frame.mp4", lambda: moving_frames(1, 64, 96), {}, (96, 64)),
    ("1x1.y4m", lambda: moving_frames(3, 1, 1), {"codec": "rawvideo", "pix_fmt": "yuv444p"}, (1, 1)),
    ("1x1.avi", lambda: moving_frames(3, 1, 1), {"codec": "rawvideo", "pix_fmt": "bgr24"}, (1, 1)),
    ("3x2.y4m", lambda: moving_frames(3, 2, 3), {"codec": "rawvideo"}, (3, 2)),
    ("3x2.mkv", lambda: moving_frames(3, 2, 3), {"pix_fmt": "yuv444p"}, (3, 2)),
    ("53x37.mkv", lambda: moving_frames(6, 37, 53), {"codec": "ffv1"}, (53, 37)),
    ("53x37.mp4", lambda: moving_frames(6, 37, 53), {"pix_fmt": "yuv444p"}, (53, 37)),
    ("97x64.y4m", lambda: moving_frames(6, 64, 97), {"codec": "rawvideo"}, (97, 64)),
    ("yuv420p10le.mkv", lambda: moving_frames(6, 64, 96), {"codec": "libx265", "pix_fmt": "yuv420p10le"}, (96, 64)),
    ("yuv444p.mp4", lambda: moving_frames(6, 64, 96), {"pix_fmt": "yuv444p"}, (96, 64)),
    ("gray.mkv", lambda: _gray(6, 64, 96), {"codec": "ffv1", "pix_fmt": "gray", "input_format": "gray"}, (96, 64)),
    # a phone held upright: landscape-coded pictures shown turned 90 degrees clockwise
    ("phone.mp4", lambda: moving_frames(6, 72, 128), {"rotation": -90}, (72, 128)),
    ("vfr.mp4", lambda: moving_frames(8, 64, 96), {"timestamps": [0, .04, .08, .3, .32, .34, .7, .71]}, (96, 64)),
]


@pytest.mark.parametrize("name,frames,kwargs,size", ODD_BUT_VALID, ids=[c[0] for c in ODD_BUT_VALID])
def test_unusual_valid_videos_score_fine(score, tmp_path, name, frames, kwargs, size):
    path = write_video(tmp_path / name, frames(), **kwargs)
    with open_clip(path) as clip:
        assert (clip.info.width, clip.info.height) == size
    result = score(path)
    assert (result.clip["width"], result.clip["height"]) == size


def test_odd_sized_tensors_and_yuv_planes_score_fine(score):
    score(torch.rand(3, 3, 1, 1))
    score(torch.rand(2, 3, 2, 3))
    score(np.zeros((1, 37, 53, 3), np.uint8))
    y = torch.randint(16, 236, (2, 37, 53), dtype=torch.uint8)
    uv = torch.randint(16, 241, (2, 19, 27, 2), dtype=torch.uint8)
    score(YUV420Frames.from_nv12(y, uv))


_EIGHT_K_CHILD = r"""
import json, resource, sys
import vqametric
model, small, big = sys.argv[1:4]
vqametric.score(small, model=model)  # warm up: imports, ONNX session
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = vqametric.score(big, model=model)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
print(json.dumps({"score": result.score, "growth_mib": (after - before) * unit / 2**20,
                  "size": [result.clip["width"], result.clip["height"]]}))
"""


def test_8k_frame_is_sampled_in_bounded_memory(tiny_head_files, sample_mp4, tmp_path):
    """A 7680x4320 clip scores with peak RSS growth under 1.25 GiB: about three 8K frames in float RGB
    (380 MiB each), far below what decoding or converting every planned frame at once would take."""
    tile = moving_frames(1, 64, 96)[0]
    frame = np.tile(tile, (68, 80, 1))[:4320, :7680]
    path = write_video(tmp_path / "8k.mp4", frame[None])
    del frame
    root = os.path.dirname(os.path.dirname(os.path.abspath(vqametric.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run([sys.executable, "-c", _EIGHT_K_CHILD, tiny_head_files["onnx"], sample_mp4, path],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["size"] == [7680, 4320]
    assert math.isfinite(out["score"]) and 1.0 <= out["score"] <= 5.0
    assert out["growth_mib"] < 1280, f"scoring one 8K frame grew peak RSS by {out['growth_mib']:.0f} MiB"


# -- in-memory frames ---------------------------------------------------------------------------
def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.float() / 255
    x[1, 0, 3, 4] = value
    return x


BAD_FRAMES = [
    ("nan", lambda: _with(CLIP, float("nan")), "NaN or Inf"),
    ("inf", lambda: _with(CLIP, float("inf")), "NaN or Inf"),
    ("numpy-nan", lambda: _with(CLIP, float("nan")).permute(0, 2, 3, 1).numpy(), "NaN or Inf"),
    ("int64", lambda: CLIP.long(), "dtype torch.int64"),
    ("bool", lambda: CLIP > 128, "dtype torch.bool"),
    ("numpy-int64", lambda: CLIP.permute(0, 2, 3, 1).numpy().astype(np.int64), "dtype int64"),
    ("numpy-bool", lambda: CLIP.permute(0, 2, 3, 1).numpy() > 128, "dtype bool"),
    ("rank-2", lambda: CLIP[0, 0], "rank 2"),
    ("rank-6", lambda: CLIP[None, None], "rank 6"),
    ("numpy-rank-2", lambda: CLIP[0, 0].numpy(), "rank 2"),
    ("numpy-rank-5", lambda: CLIP.permute(0, 2, 3, 1).numpy()[None], "pass a batch as a list"),
    ("channels-last-tensor", lambda: CLIP.permute(0, 2, 3, 1), "x.permute(0, 3, 1, 2)"),
    ("channels-first-array", lambda: CLIP.numpy(), "a.transpose(0, 2, 3, 1)"),
    ("float-above-1", lambda: CLIP.float(), "divide by 255"),
    ("negative", lambda: CLIP.float() / 255 - 0.5, "outside the declared range [0, 1]"),
    ("zero-frames", lambda: CLIP[:0], "zero frames"),
    ("empty-list", lambda: [], "the batch is empty"),
    ("empty-batch-tensor", lambda: CLIP[None, :][:0], "empty (B = 0)"),
    ("nan-in-batch", lambda: torch.stack([CLIP.float() / 255, _with(CLIP, float("nan"))]), "NaN or Inf"),
    ("not-a-video", lambda: 12345, "cannot read a video from int"),
]


@pytest.mark.parametrize("name,make,phrase", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_in_memory_frames(score, name, make, phrase):
    fails(score, make(), InvalidVideoInput, phrase)


def test_bad_fps_for_in_memory_frames(score):
    fails(lambda v: score(v, fps=0), CLIP, InvalidVideoInput, "fps must be between")


BAD_PLANES = [
    ("float-plane", lambda y, c: YUV420Frames(y.float(), c, c), "dtype torch.float32"),
    ("10-bit-overflow", lambda y, c: YUV420Frames(y.short() * 5, c.short(), c.short(), bit_depth=10),
     "outside the 10-bit range [0, 1023]"),
    ("10-bit-in-uint8", lambda y, c: YUV420Frames(y, c, c, bit_depth=10), "cannot be held in uint8"),
    ("chroma-shape", lambda y, c: YUV420Frames(y, c[:, :-1], c), "must have shape (T, ceil(H/2), ceil(W/2))"),
    ("matrix", lambda y, c: YUV420Frames(y, c, c, matrix="bt2100"), "unknown colour matrix"),
    ("nv12-shape", lambda y, c: YUV420Frames.from_nv12(y, c), "NV12 chroma must have shape"),
]


@pytest.mark.parametrize("name,make,phrase", BAD_PLANES, ids=[b[0] for b in BAD_PLANES])
def test_bad_yuv_planes(name, make, phrase):
    y = torch.full((2, 8, 10), 235, dtype=torch.uint8)
    c = torch.full((2, 4, 5), 128, dtype=torch.uint8)
    with pytest.raises(InvalidVideoInput) as e:
        make(y, c)
    assert phrase in str(e.value)


# -- a failed update leaves the metric untouched ------------------------------------------------
def _snapshot(metric: VQAThinkerMetric) -> dict:
    return {"score_sum": metric.score_sum.clone(), "count": metric.count.clone(),
            "scores": [s.clone() for s in metric.scores], "updates": metric._update_count,
            "compute": metric.compute().clone(), "results": metric.results()}


def _same(a: dict, b: dict) -> None:
    assert torch.equal(a["score_sum"], b["score_sum"]) and torch.equal(a["count"], b["count"])
    assert len(a["scores"]) == len(b["scores"]) and all(torch.equal(x, y) for x, y in zip(a["scores"], b["scores"]))
    assert a["updates"] == b["updates"] and torch.equal(a["compute"], b["compute"])
    assert [r.score for r in a["results"]] == [r.score for r in b["results"]]


def test_failed_update_leaves_the_metric_state_as_it_was(tiny_head_files, tmp_path):
    """A batch whose second video is bad: ``update`` and ``forward`` raise and change nothing."""
    metric = VQAThinkerMetric(model=tiny_head_files["onnx"])
    metric.update([CLIP, CLIP.flip(0)])
    before = _snapshot(metric)
    good = CLIP.float() / 255
    for batch in ([good, _with(CLIP, float("nan"))],                  # list: NaN in the second clip
                  [good, str(tmp_path / "missing.mp4")],               # list: a missing file
                  torch.stack([good, _with(CLIP, float("nan"))])):     # (B, T, 3, H, W) tensor
        for call in (metric.update, metric.forward):
            with pytest.raises(InvalidVideoInput):
                call(batch)
            _same(before, _snapshot(metric))
    metric.update(CLIP)  # still usable afterwards
    assert int(metric.count) == 3 and metric._update_count == before["updates"] + 1
