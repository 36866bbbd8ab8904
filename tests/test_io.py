"""Accepted video inputs: each opens with correct metadata and decodes exactly the frames asked for.

Source frames carry their own index (``media.indexed_frames``), so every check knows which source
frame a decoder returned. Lossless paths must match the source exactly; lossy codecs within a mean
absolute error (0-255 scale) that fits the codec.
"""
from __future__ import annotations

import io
import subprocess

import av
import numpy as np
import pytest
import torch
from media import (frame_index, indexed_frames, random_yuv420, remux_with_edit_list, write_image, write_video,
                   yuv_frame)

import vqametric
from vqametric import RGBFrames, SamplingConfig, YUV420Frames, make_plan, open_clip
from vqametric.io import TensorClip, iter_videos
from vqametric.io.decode import FileClip
from vqametric.sampling.reference import frames_to_rgb

N = 24
SRC = indexed_frames(N, 64, 96)
LONG = 120  # frames of the GOP-structured clips: keyframes every 30
CUDA = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def to_rgb(frames) -> np.ndarray:
    """Frames -> ``(T, H, W, 3)`` float64 on the 0-255 scale."""
    return frames_to_rgb(frames).permute(0, 2, 3, 1).double().cpu().numpy() * 255.0


def ids(frames) -> list[int]:
    """The source index drawn into each decoded frame."""
    return [frame_index(f) for f in to_rgb(frames)]


def mae(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def need_encoder(codec: str) -> None:
    try:
        av.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """``media(name, frames=SRC, **write_video_kwargs)`` -> path; each file is written once."""
    d = tmp_path_factory.mktemp("io")
    made: dict[str, str] = {}

    def make(name: str, frames=None, **kwargs) -> str:
        if name not in made:
            made[name] = write_video(d / name, SRC if frames is None else frames, **kwargs)
        return made[name]

    make.dir = d
    return make


@pytest.fixture
def decoded(monkeypatch):
    """``decoded["n"]`` counts every picture a :class:`FileClip` decodes."""
    count = {"n": 0}
    original = FileClip._decode_from

    def counting(self, position):
        for frame in original(self, position):
            count["n"] += 1
            yield frame

    monkeypatch.setattr(FileClip, "_decode_from", counting)
    return count


# -- files --------------------------------------------------------------------------------------
# (file name, write_video arguments, decoder names, pix_fmt, max mean abs error; 0 = exact)
FILES = [
    ("h264.mp4", {}, {"h264"}, "yuv420p", 6.0),
    ("h264.mkv", {}, {"h264"}, "yuv420p", 6.0),
    ("h264.mov", {}, {"h264"}, "yuv420p", 6.0),
    ("hevc.mp4", {"codec": "libx265"}, {"hevc"}, "yuv420p", 7.5),
    ("vp9.webm", {"codec": "libvpx-vp9"}, {"vp9", "libvpx-vp9"}, "yuv420p", 6.0),
    ("av1.webm", {"codec": "libsvtav1"}, {"av1", "libdav1d", "libaom-av1"}, "yuv420p", 6.5),
    ("png.mov", {"codec": "png", "pix_fmt": "rgb24"}, {"png"}, "rgb24", 0),
    ("mpeg4.avi", {"codec": "mpeg4"}, {"mpeg4"}, "yuv420p", 10.0),
    ("mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}, {"mjpeg"}, "yuvj420p", 8.0),
    ("raw.avi", {"codec": "rawvideo", "pix_fmt": "bgr24"}, {"rawvideo"}, "bgr24", 0),  # AVI stores BGR
    ("raw.y4m", {"codec": "rawvideo"}, {"rawvideo"}, "yuv420p", 4.5),  # 4:2:0 subsampling only
    ("ffv1.mkv", {"codec": "ffv1"}, {"ffv1"}, "yuv420p", 4.5),
    ("x264-444.mkv", {"pix_fmt": "yuv444p"}, {"h264"}, "yuv444p", 4.5),
]


@pytest.mark.parametrize("name,kwargs,codecs,pix_fmt,tol", FILES, ids=[f[0] for f in FILES])
def test_file_metadata_and_pixels(media, name, kwargs, codecs, pix_fmt, tol):
    need_encoder(kwargs.get("codec", "libx264"))
    with open_clip(media(name, **kwargs)) as clip:
        info = clip.info
        assert (info.width, info.height, info.num_frames) == (96, 64, N)
        assert info.fps == pytest.approx(25.0)
        assert info.duration == pytest.approx(N / 25.0)
        assert info.timestamps == pytest.approx([k / 25.0 for k in range(N)], abs=1e-6)
        assert not info.is_variable_frame_rate
        assert (info.pix_fmt, info.bit_depth, info.rotation) == (pix_fmt, 8, 0)
        assert info.codec in codecs
        want = [0, N // 2, N - 1, 5, 5]
        frames = clip.read(want)
    assert frames.num_frames == len(want) and frames.size == (64, 96)
    assert isinstance(frames, YUV420Frames if "420" in pix_fmt else RGBFrames)
    assert ids(frames) == want
    if tol == 0:
        assert frames.data.dtype == torch.uint8
        np.testing.assert_array_equal(frames.data.numpy(), SRC[want])
    else:
        assert mae(to_rgb(frames), SRC[want]) <= tol


def test_metadata_decodes_at_most_the_first_picture(media, decoded):
    """``info`` demuxes packets; the only picture it decodes is the first (for the rotation)."""
    clip = open_clip(media("long-h264.mp4", indexed_frames(LONG), options={"preset": "medium", "g": "30"}))
    assert decoded["n"] == 0
    assert clip.info.num_frames == LONG
    assert decoded["n"] <= 1
    clip.close()


@pytest.mark.parametrize("codec,container", [("rawvideo", "y4m"), ("ffv1", "mkv")])
@pytest.mark.parametrize("height,width", [(64, 96), (37, 53)])
def test_lossless_yuv_files_decode_exactly(media, codec, container, height, width):
    y, u, v = random_yuv420(4, height, width)
    path = media(f"yuv-{height}x{width}.{container}", [yuv_frame(p) for p in zip(y, u, v)], codec=codec)
    with open_clip(path) as clip:
        assert (clip.info.width, clip.info.height, clip.info.num_frames) == (width, height, 4)
        f = clip.read([3, 0, 2])
    assert isinstance(f, YUV420Frames) and f.bit_depth == 8 and not f.full_range
    for got, src in ((f.y, y), (f.u, u), (f.v, v)):
        assert got.dtype == torch.uint8
        np.testing.assert_array_equal(got.numpy(), src[[3, 0, 2]])


def test_bytes_and_file_objects_match_the_path(media, tiny_head_files):
    path = media("h264.mp4")
    with open_clip(path) as clip:
        ref_info, ref = clip.info, clip.read([0, 7, N - 1])
    data = open(path, "rb").read()
    spent = io.BytesIO(data)
    spent.seek(0, io.SEEK_END)  # just written: a file object is read from its start anyway
    with open(path, "rb") as fh:
        for src in (data, bytearray(data), memoryview(data), io.BytesIO(data), spent, fh):
            with open_clip(src) as clip:
                info = clip.info
                assert (info.width, info.height, info.num_frames, info.fps, info.pix_fmt) == \
                       (ref_info.width, ref_info.height, ref_info.num_frames, ref_info.fps, ref_info.pix_fmt)
                assert info.timestamps == ref_info.timestamps
                f = clip.read([0, 7, N - 1])
            for a, b in ((f.y, ref.y), (f.u, ref.u), (f.v, ref.v)):
                assert torch.equal(a, b)
        assert not fh.closed  # the caller's file object is left open
    model = tiny_head_files["onnx"]
    assert vqametric.score(data, model=model).score == pytest.approx(vqametric.score(path, model=model).score)


@pytest.mark.parametrize("ext,pix_fmt,tol", [("png", "rgb24", 0), ("jpg", "yuvj420p", 6.0)])
def test_still_images_are_one_frame_clips(tmp_path, ext, pix_fmt, tol):
    path = write_image(tmp_path / f"still.{ext}", SRC[7])
    with open_clip(path) as clip:
        info = clip.info
        assert (info.width, info.height, info.num_frames, info.pix_fmt) == (96, 64, 1, pix_fmt)
        assert info.duration > 0
        f = clip.read([0, 0])
    assert ids(f) == [7, 7]
    if tol == 0:
        np.testing.assert_array_equal(f.data.numpy(), SRC[[7, 7]])
    else:
        assert f.full_range and mae(to_rgb(f), SRC[[7, 7]]) <= tol


# -- in-memory frames ---------------------------------------------------------------------------
def test_numpy_frames():
    clip = open_clip(SRC)
    assert isinstance(clip, TensorClip)
    info = clip.info
    assert (info.width, info.height, info.num_frames, info.pix_fmt, info.bit_depth) == (96, 64, N, "rgb24", 8)
    assert info.fps == 30.0 and info.duration == pytest.approx(N / 30.0)
    assert torch.equal(clip.read([3, 1, 3]).data, torch.from_numpy(SRC[[3, 1, 3]]))
    assert open_clip(SRC, fps=12.5).info.duration == pytest.approx(N / 12.5)
    assert open_clip(SRC[4]).info.num_frames == 1  # (H, W, 3): one image
    for dtype in (np.float32, np.float64, np.float16):
        f = open_clip((SRC / 255.0).astype(dtype)).read([2])
        assert f.data.dtype == torch.float32
        np.testing.assert_allclose(f.data.numpy(), SRC[[2]] / 255.0, atol=1e-3)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_torch_frames(device):
    x = torch.from_numpy(SRC).permute(0, 3, 1, 2).to(device)  # (T, 3, H, W) uint8
    for video, expect in ((x, SRC), (x.float() / 255, SRC / 255.0), (x.half() / 255, SRC / 255.0)):
        clip = open_clip(video)
        assert (clip.info.width, clip.info.height, clip.info.num_frames) == (96, 64, N)
        f = clip.read([5, 0])
        assert f.device.type == device and f.data.shape == (2, 64, 96, 3)
        np.testing.assert_allclose(f.data.float().cpu().numpy(), expect[[5, 0]], atol=1e-3)
    assert open_clip(x[3]).info.num_frames == 1  # (3, H, W): one image


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_torch_batch_is_split_into_clips(tiny_head_files, device):
    x = torch.from_numpy(SRC).permute(0, 3, 1, 2).to(device)
    batch = torch.stack([x, x.flip(0)])  # (B, T, 3, H, W)
    clips = list(iter_videos(batch))
    assert len(clips) == 2 and torch.equal(clips[1], x.flip(0))
    for b in (batch, batch.float() / 255):
        results = vqametric.score(b, model=tiny_head_files["onnx"])
        assert len(results) == 2
        assert all(1.0 <= r.score <= 5.0 for r in results)
        alone = vqametric.score(b[1], model=tiny_head_files["onnx"])
        assert results[1].score == pytest.approx(alone.score, abs=1e-4)


# -- raw YUV 4:2:0 planes ---------------------------------------------------------------------
_SWS_COLORSPACE = {"bt601": 5, "bt709": 1, "bt2020": 9}  # AVColorSpace / SWS_CS_* values


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize("full_range", [False, True])
def test_yuv420_planes(bit_depth, matrix, full_range):
    """I420 and NV12 planes keep their samples (odd sizes too) and convert to RGB like FFmpeg."""
    kw = {"bit_depth": bit_depth, "matrix": matrix, "full_range": full_range}
    as_tensor = (lambda a: torch.from_numpy(a.astype(np.int16))) if bit_depth > 8 else torch.from_numpy
    y, u, v = random_yuv420(2, 37, 53, bit_depth, full_range, seed=bit_depth)
    i420 = YUV420Frames(as_tensor(y), as_tensor(u), as_tensor(v), **kw)
    nv12 = YUV420Frames.from_nv12(as_tensor(y), torch.stack([as_tensor(u), as_tensor(v)], -1), **kw)
    for frames in (i420, nv12):
        clip = open_clip(frames)
        info = clip.info
        assert (info.width, info.height, info.num_frames, info.bit_depth) == (53, 37, 2, bit_depth)
        assert info.pix_fmt == ("yuv420p" if bit_depth == 8 else "yuv420p10le")
        got = clip.read([1, 0])
        for plane, src in ((got.y, y), (got.u, u), (got.v, v)):
            np.testing.assert_array_equal(plane.numpy().astype(np.int64), src[[1, 0]])
    # an odd-sized frame converts like its even-sized padding, cropped
    pad = np.pad(y, ((0, 0), (0, 1), (0, 1)), mode="edge")
    padded = to_rgb(YUV420Frames(as_tensor(pad), as_tensor(u), as_tensor(v), **kw))
    np.testing.assert_allclose(to_rgb(i420), padded[:, :37, :53], atol=1e-4)
    # swscale is the oracle on even sizes (at odd sizes it interpolates chroma differently)
    y, u, v = y[:, :36, :52], u[:, :18, :26], v[:, :18, :26]
    fmt = "yuv420p" if bit_depth == 8 else "yuv420p10le"
    ref = np.stack([yuv_frame(p, fmt).reformat(format="rgb48le", src_colorspace=_SWS_COLORSPACE[matrix],
                                               src_color_range=2 if full_range else 1,
                                               interpolation="POINT").to_ndarray()
                    for p in zip(y, u, v)]) / 65535.0 * 255.0
    ours = to_rgb(YUV420Frames(as_tensor(y), as_tensor(u), as_tensor(v), **kw))
    # swscale's own 8-bit paths round coarsely (about 1 level on average); 10-bit is tighter
    assert mae(ours, ref) <= (2.0 if bit_depth == 8 else 0.6)
    assert np.abs(ours - ref).max() <= (4.5 if bit_depth == 8 else 1.5)


# -- decoding only the planned frames -----------------------------------------------------------
GOPS = [
    ("gop-h264-bframes.mp4", {"codec": "libx264", "options": {"preset": "medium", "g": "30"}}),
    ("gop-h264-bframes.mkv", {"codec": "libx264", "options": {"preset": "medium", "g": "30"}}),
    ("gop-hevc-open.mp4", {"codec": "libx265", "options": {"g": "30"}}),
    ("gop-hevc-open.mkv", {"codec": "libx265", "options": {"g": "30"}}),
    ("gop-vp9.webm", {"codec": "libvpx-vp9", "options": {"g": "30"}}),
    ("gop-mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
]


@pytest.mark.parametrize("name,kwargs", GOPS, ids=[g[0] for g in GOPS])
def test_reads_exactly_the_planned_frames(media, decoded, name, kwargs):
    need_encoder(kwargs["codec"])
    path = media(name, indexed_frames(LONG), **kwargs)
    if "bframes" in name or "hevc" in name:  # the clip really reorders frames (B-frames)
        with av.open(path) as c:
            order = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
        assert order != sorted(order)
    with open_clip(path) as clip:
        assert clip.info.num_frames == LONG
        for want in ([0, LONG // 2, LONG - 1], [LONG - 1, 0, LONG // 2, LONG // 2], [29, 30, 31, 89, 90]):
            decoded["n"] = 0
            assert ids(clip.read(want)) == want
            if want[0] == 0:  # two keyframe seeks + one GOP tail: far from the whole clip
                assert decoded["n"] <= 40
        decoded["n"] = 0
        assert ids(clip.read(range(LONG))) == list(range(LONG))
        assert decoded["n"] <= LONG + 2


def test_open_gop_leading_pictures(media):
    """x265's default open GOP: pictures after a CRA keyframe in decode order show before it."""
    need_encoder("libx265")
    path = media("gop-hevc-open.mkv", indexed_frames(LONG), codec="libx265", options={"g": "30"})
    with av.open(path) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
    keys = [k for k, (_, key) in enumerate(packets) if key and k > 0]
    assert any(packets[k + 1][0] < packets[k][0] for k in keys)  # leading pictures exist
    with open_clip(path) as clip:
        want = [LONG - 1, 28, 29, 30, 58, 59, 60, 61]
        assert ids(clip.read(want)) == want


def test_edit_list_hides_leading_packets(media, tmp_path):
    """An MP4 cut with an edit list: packets before the cut are references, not frames."""
    src = media("long-h264.mp4", indexed_frames(LONG), options={"preset": "medium", "g": "30"})
    path = remux_with_edit_list(src, tmp_path / "cut.mp4", hide_seconds=13 / 25)
    with open_clip(path) as clip:
        info = clip.info
        assert info.num_frames == LONG - 13
        assert info.timestamps[0] == 0.0 and info.duration == pytest.approx((LONG - 13) / 25)
        want = [0, 1, 50, LONG - 14]
        assert ids(clip.read(want)) == [13 + i for i in want]


# -- rotation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_rotation_metadata_is_honoured(media, rotation, pix_fmt):
    path = media(f"rot{rotation}-{pix_fmt}.mp4", rotation=rotation, pix_fmt=pix_fmt)
    k = rotation // 90
    with open_clip(path) as clip:
        info = clip.info
        assert info.rotation == rotation
        assert (info.width, info.height) == ((64, 96) if k % 2 else (96, 64))
        f = clip.read([0, 9, N - 1])
    assert f.size == (info.height, info.width)
    expect = np.rot90(SRC[[0, 9, N - 1]], k, axes=(1, 2))  # rotation is counter-clockwise
    assert mae(to_rgb(f), expect) <= 6.0
    assert [frame_index(np.rot90(x, -k)) for x in to_rgb(f)] == [0, 9, N - 1]


def test_rotation_matches_ffmpeg_autorotate(media):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = media("rot90-yuv444p.mp4", rotation=90, pix_fmt="yuv444p")
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    with open_clip(path) as clip:
        ours = clip.read(range(N)).data.numpy()
    theirs = np.frombuffer(out, np.uint8).reshape(ours.shape)
    assert mae(ours, theirs) <= 1.0


# -- timing -------------------------------------------------------------------------------------
VFR_STEPS_MS = [40] * 8 + [130] * 6 + [17] * 10 + [60] * 5  # 30 frames at uneven intervals


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate(media, ext):
    ts = np.concatenate([[0], np.cumsum(VFR_STEPS_MS)]) / 1000.0
    n = len(ts)
    path = media(f"vfr.{ext}", indexed_frames(n), timestamps=ts)
    with open_clip(path) as clip:
        info = clip.info
        assert info.num_frames == n and info.is_variable_frame_rate
        assert info.timestamps == pytest.approx(list(ts), abs=1e-9)
        assert info.duration == pytest.approx(ts[-1] + 1 / 25)  # the last frame lasts 1/rate
        assert info.fps == pytest.approx(n / info.duration)
        config = SamplingConfig(frame_rule="fps", fps=4.0, fragment_grid=0, fragment_patch=0, global_size=32)
        plan = make_plan(n, info.height, info.width, config, fps=info.fps, timestamps=info.timestamps)
        times = np.arange(0, ts[-1] + 1 / 8, 1 / 4)
        expect = [int(np.argmin(np.abs(ts - t))) for t in times]  # the frame shown nearest each tick
        assert list(plan.frame_indices) == expect
        assert expect != [min(n - 1, round(t * info.fps)) for t in times]  # constant-rate maths differs
        assert ids(clip.read(plan.frame_indices)) == expect


# -- bit depth and formats ----------------------------------------------------------------------
@pytest.mark.parametrize("codec,options,tol", [("ffv1", None, 0), ("libx265", {"crf": "8"}, 6.0)])
def test_10bit_precision_is_kept(media, codec, options, tol):
    need_encoder(codec)
    y, u, v = random_yuv420(6, 64, 96, bit_depth=10)
    path = media(f"10bit-{codec}.mkv", [yuv_frame(p, "yuv420p10le") for p in zip(y, u, v)], codec=codec,
                 pix_fmt="yuv420p10le", options=options)
    with open_clip(path) as clip:
        assert (clip.info.pix_fmt, clip.info.bit_depth) == ("yuv420p10le", 10)
        f = clip.read([5, 0, 3])
    assert isinstance(f, YUV420Frames) and f.bit_depth == 10
    for plane, src in ((f.y, y), (f.u, u), (f.v, v)):
        assert plane.dtype == torch.int16
        got = plane.numpy().astype(np.int64)
        assert got.max() > 255 and (got % 4 != 0).any()  # real 10-bit samples, not shifted 8-bit ones
        if tol == 0:
            np.testing.assert_array_equal(got, src[[5, 0, 3]])
        else:
            assert mae(got, src[[5, 0, 3]]) <= tol  # 10-bit units


def test_high_bit_depth_rgb_formats_become_float(media):
    path = media("444-10bit.mkv", codec="ffv1", pix_fmt="yuv444p10le")
    with open_clip(path) as clip:
        assert (clip.info.pix_fmt, clip.info.bit_depth) == ("yuv444p10le", 10)
        f = clip.read([1, 2])
    assert isinstance(f, RGBFrames) and f.data.dtype == torch.float32
    assert 0.0 <= float(f.data.min()) and float(f.data.max()) <= 1.0
    assert mae(f.data.numpy() * 255.0, SRC[[1, 2]]) <= 4.5 and ids(f) == [1, 2]


def test_gray_is_exact(media):
    gray = SRC.mean(-1).astype(np.uint8)
    path = media("gray.mkv", gray, codec="ffv1", pix_fmt="gray", input_format="gray")
    with open_clip(path) as clip:
        assert clip.info.pix_fmt == "gray"
        f = clip.read([4, 20])
    assert isinstance(f, RGBFrames) and f.data.dtype == torch.uint8
    np.testing.assert_array_equal(f.data.numpy(), np.repeat(gray[[4, 20], ..., None], 3, -1))


@pytest.mark.parametrize("colorspace,color_range,matrix,full", [(None, None, "bt601", False), (1, 1, "bt709", False),
                                                                (9, 2, "bt2020", True), (5, 2, "bt601", True)])
def test_colour_tags_are_read(tmp_path, colorspace, color_range, matrix, full):
    """The matrix and range tags of a stream reach the decoded planes (untagged small: BT.601 limited)."""
    y, u, v = random_yuv420(3, 36, 52, full_range=full)
    path = str(tmp_path / "tagged.mkv")
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 52, 36, "yuv420p"
        if colorspace is not None:
            s.codec_context.colorspace, s.codec_context.color_range = colorspace, color_range
        for planes in zip(y, u, v):
            for packet in s.encode(yuv_frame(planes)):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    with open_clip(path) as clip:
        f = clip.read([2, 0])
    assert (f.matrix, f.full_range) == (matrix, full)
    np.testing.assert_array_equal(f.y.numpy(), y[[2, 0]])


def test_a_closed_clip_reopens_on_read(media):
    clip = open_clip(media("h264.mp4"))
    clip.close()
    assert clip.info.num_frames == N
    assert ids(clip.read([20, 3])) == [20, 3]
    clip.close()
    assert ids(clip.read([9])) == [9]
