"""Raw YUV files: RawYUV reads exactly the requested frames; score and the CLI take .yuv files."""
import json

import av
import numpy as np
import pytest
import torch

import vqametric
from media import moving_frames, random_yuv420, write_video
from vqametric.cli import main
from vqametric.errors import InvalidVideoInput
from vqametric.io import rawyuv
from vqametric.io.rawyuv import RawYUV

H, W, N = 47, 66, 20  # odd height: chroma planes round up


def _write(path, y, u, v, pix_fmt):
    with open(path, "wb") as f:
        for i in range(len(y)):
            if pix_fmt == "nv12":
                f.write(y[i].tobytes() + np.stack([u[i], v[i]], -1).tobytes())
            else:
                f.write(y[i].astype("<u2").tobytes() + u[i].astype("<u2").tobytes() + v[i].astype("<u2").tobytes()
                        if pix_fmt == "yuv420p10le" else y[i].tobytes() + u[i].tobytes() + v[i].tobytes())
    return str(path)


@pytest.fixture(scope="module")
def planes():
    return {8: random_yuv420(N, H, W, seed=1), 10: random_yuv420(N, H, W, bit_depth=10, seed=1)}


@pytest.mark.parametrize("pix_fmt, depth", [("yuv420p", 8), ("nv12", 8), ("yuv420p10le", 10)])
def test_reads_the_requested_frames_with_seeks(tmp_path, planes, pix_fmt, depth, monkeypatch):
    y, u, v = planes[depth]
    path = _write(tmp_path / f"x_{pix_fmt}.yuv", y, u, v, pix_fmt)
    clip = RawYUV(path, W, H, pix_fmt, fps=30)
    i = clip.info
    assert (i.width, i.height, i.num_frames, i.fps, i.pix_fmt, i.bit_depth, i.codec) == (W, H, N, 30.0, pix_fmt,
                                                                                       depth, "rawvideo")
    reads = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, pos):
            self.pos = pos
            return self.f.seek(pos)

        def read(self, n):
            reads.append((self.pos, n))
            return self.f.read(n)

    monkeypatch.setattr(rawyuv, "open", lambda p, mode: Spy(real_open(p, mode)), raising=False)
    frames = clip.read([7, 2, 7, 19])
    assert sorted(reads) == [(k * clip.frame_bytes, clip.frame_bytes) for k in (2, 7, 19)]  # distinct frames only
    assert frames.bit_depth == depth and frames.num_frames == 4
    for got, want in ((frames.y, y), (frames.u, u), (frames.v, v)):
        assert torch.equal(got.long(), torch.from_numpy(want[[7, 2, 7, 19]].astype(np.int64)))


def test_scores_match_the_same_frames_in_memory(tmp_path, planes, one_thread):
    y, u, v = planes[8]
    a = vqametric.score(RawYUV(_write(tmp_path / "a.yuv", y, u, v, "yuv420p"), W, H, "yuv420p", fps=30))
    b = vqametric.score(RawYUV(_write(tmp_path / "b.yuv", y, u, v, "nv12"), W, H, "nv12", fps=30))
    c = vqametric.score(vqametric.YUV420Frames(*(torch.from_numpy(p) for p in (y, u, v)), matrix="bt601"), fps=30)
    assert a.score == b.score == c.score
    assert [s.score for s in a.timeline] == [s.score for s in c.timeline]
    assert a.clip["source"].endswith("a.yuv") and a.clip["codec"] == "rawvideo"


def test_decoded_file_and_its_raw_frames_score_the_same(tmp_path, one_thread):
    mp4 = write_video(tmp_path / "v.mp4", moving_frames(30, 64, 96), fps=25)
    with av.open(mp4) as c, open(tmp_path / "v.yuv", "wb") as out:
        for frame in c.decode(video=0):
            out.write(frame.to_ndarray(format="yuv420p").tobytes())
    raw = RawYUV(tmp_path / "v.yuv", 96, 64, "yuv420p", fps=25)
    assert raw.read([0]).matrix == "bt601"  # as the decoder treats untagged streams below 720 lines
    assert RawYUV(tmp_path / "v.yuv", 96, 64, "yuv420p", fps=25, matrix="bt709").read([0]).matrix == "bt709"
    a, b = vqametric.score(mp4), vqametric.score(raw)
    assert a.score == b.score and [s.score for s in a.timeline] == [s.score for s in b.timeline]


def test_cli_options_and_the_error_without_them(tmp_path, planes, capsys, monkeypatch):
    y, u, v = planes[10]
    _write(tmp_path / "t.yuv", y, u, v, "yuv420p10le")
    monkeypatch.chdir(tmp_path)
    assert main(["score", "t.yuv", "--format", "json", "-o", "out.json", "-q"]) == 1
    failure = json.loads((tmp_path / "out.json").read_text())[0]
    assert failure["error"] == "InvalidVideoInput" and "--size WxH --pix-fmt" in failure["message"]
    capsys.readouterr()
    assert main(["score", "t.yuv", "--size", f"{W}x{H}", "--pix-fmt", "yuv420p10le"]) == 1
    assert "pass its frame rate" in capsys.readouterr().err
    assert main(["score", "t.yuv", "--size", f"{W}x{H}", "--pix-fmt", "yuv420p10le", "--fps", "24",
                 "--format", "json", "-o", "out.json"]) == 0
    r = json.loads((tmp_path / "out.json").read_text())[0]
    assert r["source"] == "t.yuv" and r["clip"]["bit_depth"] == 10 and r["clip"]["fps"] == 24.0
    assert main(["score", "t.yuv", "--size", "66by47", "--fps", "24"]) == 2
    assert "--size must be WIDTHxHEIGHT" in capsys.readouterr().err


def test_wrong_sizes_and_formats_are_typed_errors(tmp_path, planes):
    y, u, v = planes[8]
    path = _write(tmp_path / "a.yuv", y, u, v, "yuv420p")
    with pytest.raises(InvalidVideoInput, match="not a whole number of 64x47 yuv420p frames"):
        RawYUV(path, 64, 47, "yuv420p", fps=25)
    with pytest.raises(InvalidVideoInput, match="pixel format 'yuv422p'"):
        RawYUV(path, W, H, "yuv422p", fps=25)
    with pytest.raises(InvalidVideoInput, match="fps"):
        RawYUV(path, W, H, "yuv420p", fps=0)
    with pytest.raises(InvalidVideoInput, match="no such file"):
        RawYUV(tmp_path / "missing.yuv", W, H)
    with pytest.raises(InvalidVideoInput, match="raw YUV, a file without a header.*--size WxH"):
        vqametric.open_clip(path)


def test_cli_pixel_formats_match_the_reader():
    from vqametric import cli_rawyuv
    from vqametric.io import rawyuv
    assert cli_rawyuv.PIX_FMTS == rawyuv.PIX_FMTS
