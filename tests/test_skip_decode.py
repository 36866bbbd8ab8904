"""Skipping non-reference pictures between requested frames (``FileClip``, ``skip_frame=NONREF``).

The frames read through the skipping path must be bit-identical to a plain sequential full
decode, for every codec and GOP structure, whatever the decoder threading; and on codecs where
skipping applies it must really skip pictures (fewer frames come out of the decoder).
"""
from __future__ import annotations

import av
import numpy as np
import pytest
from media import frame_index, indexed_frames

import vqametric
from vqametric.io import decode
from vqametric.io.decode import FileClip, _planes
from vqametric.sampling.plan import make_plan

N, H, W = 120, 96, 128


def _encodable(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
        return True
    except Exception:
        return False


def _av1_encoder() -> str | None:
    return next((c for c in ("libsvtav1", "libaom-av1") if _encodable(c)), None)


def _write(path, codec: str, options: dict, container: str | None = None) -> str:
    """Encode the indexed frames with ``options`` exactly as given (no preset defaults added)."""
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = dict(options)
        for f in indexed_frames(N, H, W):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


# name -> (encoder, options, container, file suffix, skipping expected to apply)
CLIPS = {
    "x264-bpyramid": ("libx264", {"preset": "medium", "g": "48", "bf": "3",
                                  "x264-params": "b-pyramid=normal:scenecut=0"}, "mp4", "mp4", True),
    "x264-open-gop": ("libx264", {"preset": "fast", "g": "32", "bf": "3",
                                  "x264-params": "open-gop=1:b-pyramid=normal"}, "mp4", "mp4", True),
    "x264-mkv-strict": ("libx264", {"preset": "veryfast", "g": "60", "bf": "2",
                                    "x264-params": "b-pyramid=strict"}, "matroska", "mkv", True),
    "x265": ("libx265", {"preset": "fast", "x265-params": "log-level=error:keyint=48:bframes=4"}, "mp4", "mp4", True),
    "x265-annexb": ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error:keyint=40:bframes=3"},
                    "mpegts", "ts", True),
    "x265-temporal-layers": ("libx265", {"preset": "fast",
                                         "x265-params": "log-level=error:keyint=48:bframes=4:temporal-layers=3"},
                             "mp4", "mp4", False),
    "mpeg2": ("mpeg2video", {"g": "24", "bf": "2"}, "mpegts", "ts", True),
    "vp9": ("libvpx-vp9", {"g": "48", "deadline": "good", "cpu-used": "8", "lag-in-frames": "16",
                           "auto-alt-ref": "1"}, "webm", "webm", False),
    "av1": (_av1_encoder(), {"g": "48", "preset": "10"} if _av1_encoder() == "libsvtav1" else
            {"g": "48", "cpu-used": "8", "usage": "realtime"}, "mp4", "mp4", False),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("skip")
    made = {}

    def get(name):
        if name not in made:
            codec, options, container, suffix, _ = CLIPS[name]
            if codec is None or not _encodable(codec):
                pytest.skip(f"no {name} encoder in this FFmpeg build")
            made[name] = _write(d / f"{name}.{suffix}", codec, options, container)
        return made[name]
    return get


def _full_decode(path: str) -> list[list[np.ndarray]]:
    """Every frame's planes, presentation order, from a plain single-threaded sequential decode."""
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = [(f.pts, [p.copy() for p in _planes(f)[1]]) for f in c.decode(s)]
    return [p for _, p in sorted(frames, key=lambda t: t[0])]


def _read(path: str, indices, threads=None) -> tuple[list[list[np.ndarray]], int]:
    """Frames at ``indices`` through ``FileClip`` and how many pictures its decoder gave out."""
    clip = FileClip(path, threads=threads)
    count = [0]
    plain = clip._decode_from

    def counting(position):
        for frame in plain(position):
            count[0] += 1
            yield frame
    clip._decode_from = counting
    with clip:
        clip.info  # noqa: B018 - index and first frame before counting
        count[0] = 0
        frames = clip.read(indices)
    planes = [frames.y.numpy(), frames.u.numpy(), frames.v.numpy()]
    return [[p[k] for p in planes] for k in range(len(indices))], count[0]


def _index_sets(n: int) -> list[list[int]]:
    plan = make_plan(n, H, W, vqametric.get_card(vqametric.DEFAULT_MODEL).sampling, fps=25.0)
    rng = np.random.default_rng(7)
    sets = [list(plan.frame_indices), [n - 1], [0, 1, 2, 3], list(range(37, 45)), [5, 90, 6, 5]]
    sets += [sorted(rng.choice(n, size=k, replace=False).tolist()) for k in (3, 10, 25)]
    return sets


@pytest.mark.parametrize("name", list(CLIPS))
def test_skipping_reads_exact_frames(clips, name, monkeypatch):
    path = clips(name)
    full = _full_decode(path)
    assert len(full) == N and [frame_index(f[0]) for f in full[:3]] == [0, 1, 2]
    skipped_any = False
    for k, indices in enumerate(_index_sets(N)):
        threads = (None, 1, 6)[k % 3]  # frame threads (FFmpeg's count), single thread, more threads than cores
        got, pictures = _read(path, indices, threads)
        for i, planes in zip(indices, got):
            for c in range(3):
                np.testing.assert_array_equal(planes[c], full[i][c], err_msg=f"{name}: frame {i} plane {c} "
                                              f"(indices {indices}, threads {threads})")
        monkeypatch.setattr(decode, "SKIP_NONREF", False)
        _, plain = _read(path, indices, threads)
        monkeypatch.setattr(decode, "SKIP_NONREF", True)
        assert pictures <= plain
        skipped_any |= pictures < plain
    assert skipped_any == CLIPS[name][4], f"{name}: skipping applied: {skipped_any}"


def test_hevc_sub_layers_parsed(clips):
    """One temporal sub-layer: skipping on; several: off (higher layers may reference _N pictures)."""
    for name, layers in (("x265", 1), ("x265-annexb", 1), ("x265-temporal-layers", None)):
        with FileClip(clips(name)) as clip:
            n = decode._hevc_sub_layers(clip._stream.codec_context.extradata)
            assert (n == layers) if layers else (n != 1), (name, n)
            assert clip._skip_safe() == (n == 1)
    assert decode._hevc_sub_layers(b"") == 0 and decode._hevc_sub_layers(None) == 0


def test_decoder_threads_setting(clips):
    path = clips("x264-bpyramid")
    assert decode.get_decoder_threads() == 0
    try:
        decode.set_decoder_threads(1)
        with FileClip(path) as clip:
            assert clip._stream.codec_context.thread_count == 1
        with FileClip(path, threads=3) as clip:
            assert clip._stream.codec_context.thread_count == 3
    finally:
        decode.set_decoder_threads(None)
    assert decode.get_decoder_threads() == 0
    with pytest.raises(ValueError):
        decode.set_decoder_threads(-1)
    with pytest.raises(ValueError):
        FileClip(path, threads=-2)
