"""Preprocessing overlapped with decoding (``read_planned(..., chunk_fn=...)``).

Chunks (segments by default) are handed to ``chunk_fn`` in the calling thread while a background
thread still decodes later frames. The outputs must equal preprocessing the decoded frames afterwards, errors
on either side must propagate without leaving the decoding thread behind, and the overlap must
really happen.
"""
from __future__ import annotations

import threading

import av
import pytest
import torch
from media import frame_index, indexed_frames, write_video

from vqametric import RGBFrames, SamplingConfig
from vqametric.backends.planned import read_planned
from vqametric.errors import VideoDecodeError
from vqametric.io import TensorClip
from vqametric.io.decode import FileClip
from vqametric.sampling import preprocess_reference
from vqametric.sampling.reference import frames_to_rgb

SAMPLING = SamplingConfig(num_segments=4, frames_per_segment=3, fragment_grid=2, fragment_patch=16, global_size=32)


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory):
    """120 indexed frames, a keyframe every 30: each segment lies in its own GOP."""
    path = tmp_path_factory.mktemp("overlap") / "gop.mp4"
    return write_video(path, indexed_frames(120), options={"g": "30"})


def _ids(frames) -> list[int]:
    rgb = frames_to_rgb(frames).permute(0, 2, 3, 1).double().numpy() * 255.0
    return [frame_index(f) for f in rgb]


def _views(plan, s, frames):
    return preprocess_reference(frames, plan)


def _no_decode_thread() -> bool:
    return not any(t.name == "vqametric-decode" for t in threading.enumerate())


@pytest.mark.parametrize("kind", ["gop", "short", "10bit", "rgb"])
def test_outputs_equal_preprocessing_after_decoding(tmp_path, gop_clip, kind):
    """GOP-structured 8-bit, 5 frames (the plan repeats frames), 10-bit 4:2:0 (unfilled slots of
    int16 planes hold garbage that must never be validated or read), RGB (PNG in MOV)."""
    path = {"gop": lambda: gop_clip,
            "short": lambda: write_video(tmp_path / "short.mp4", indexed_frames(5)),
            "10bit": lambda: write_video(tmp_path / "10bit.mkv", indexed_frames(40), codec="libx265",
                                         pix_fmt="yuv420p10le", options={"g": "10"}),
            "rgb": lambda: write_video(tmp_path / "rgb.mov", indexed_frames(40), codec="png", pix_fmt="rgb24"),
            }[kind]()
    read = read_planned(path, SAMPLING, chunk_fn=_views)
    assert len(read.chunk_outputs) == SAMPLING.num_segments
    ref = preprocess_reference(read.planned(), read.plan)
    for name, want in ref.items():
        got = torch.cat([o[name] for o in read.chunk_outputs])
        assert torch.equal(got, want), name
    assert set(read.timings) == {"open", "decode", "preprocess"} and min(read.timings.values()) >= 0


def test_tensor_clips_take_the_same_path_without_a_thread():
    frames = RGBFrames(torch.from_numpy(indexed_frames(40)))
    seen = []

    def fn(plan, s, f):
        seen.append(threading.current_thread() is threading.main_thread())
        return _views(plan, s, f)

    read = read_planned(TensorClip(frames), SAMPLING, chunk_fn=fn)
    ref = preprocess_reference(read.planned(), read.plan)
    assert torch.equal(torch.cat([o["global_view"] for o in read.chunk_outputs]), ref["global_view"])
    assert seen == [True] * SAMPLING.num_segments


def test_streaming_read_reports_frames_once_their_slots_hold_them(gop_clip):
    want = [29, 30, 31, 89, 90, 30]
    reports = []

    def on_frame(i, take):
        slots = [k for k, j in enumerate(want) if j == i]
        reports.append((i, _ids(take(slots))))

    with FileClip(gop_clip) as clip:
        frames = clip.read_streaming(want, on_frame)
    assert _ids(frames) == want
    assert sorted({i for i, _ in reports}) == sorted(set(want))
    for i, got in reports:
        assert got == [i] * len(got)     # each reported slot already holds its frame


def test_segments_are_processed_while_later_frames_decode(gop_clip, monkeypatch):
    """The decoder holds the last segment's first frame until segment 0 is processed: only an
    overlapped pipeline passes (a sequential one times out and records False)."""
    plan = read_planned(gop_clip, SAMPLING).plan
    last_start = plan.frame_indices[(plan.num_segments - 1) * plan.frames_per_segment]
    first_done = threading.Event()
    waited = []
    original = FileClip._decode_from

    def gated(self, position):
        for frame in original(self, position):
            if frame.pts is not None and self.index.position.get(frame.pts) == last_start:
                waited.append(first_done.wait(timeout=5))
            yield frame

    monkeypatch.setattr(FileClip, "_decode_from", gated)

    def fn(plan, s, frames):
        if s == 0:
            first_done.set()
        return _ids(frames)

    read = read_planned(gop_clip, SAMPLING, chunk_fn=fn)
    assert waited == [True]
    assert sum(read.chunk_outputs, []) == list(read.plan.frame_indices)


def test_a_failing_chunk_fn_stops_decoding_and_propagates(gop_clip):
    calls = []

    def fn(plan, s, frames):
        calls.append(s)
        raise KeyError("preprocessing failed")

    with pytest.raises(KeyError, match="preprocessing failed"):
        read_planned(gop_clip, SAMPLING, chunk_fn=fn)
    assert calls == [0] and _no_decode_thread()


def test_a_decoding_error_propagates(gop_clip, monkeypatch):
    original = FileClip._decode_from

    def broken(self, position):
        for n, frame in enumerate(original(self, position)):
            if n == 3:
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame

    monkeypatch.setattr(FileClip, "_decode_from", broken)
    got = []
    with pytest.raises(VideoDecodeError, match="re-encode"):
        read_planned(gop_clip, SAMPLING, chunk_fn=lambda plan, s, f: got.append(s))
    assert _no_decode_thread()


def test_the_fast_scorer_scores_the_same_with_overlap(sample_mp4, tiny_head_files, one_thread):
    from vqametric.backends.fast import FastScorer
    from vqametric.registry import card_from_weights

    card = card_from_weights(tiny_head_files["safetensors"])
    read = read_planned(sample_mp4, card.sampling)
    ref = preprocess_reference(read.planned(), read.plan)
    for overlap in (True, False):
        views, ctx = FastScorer(card, runtime="torch", overlap=overlap).prepare(sample_mp4)
        for name in ref:
            assert torch.equal(views[name], ref[name])
        assert set(ctx["timings"]) == {"open", "decode", "preprocess"}


@pytest.mark.parametrize("chunk", [1, 3])
def test_frame_by_frame_chunks_give_the_same_views(gop_clip, chunk):
    read = read_planned(gop_clip, SAMPLING, chunk_fn=_views, chunk=chunk)
    assert len(read.chunk_outputs) == len(read.plan.frame_indices) // chunk
    ref = preprocess_reference(read.planned(), read.plan)
    for name, want in ref.items():
        assert torch.equal(torch.cat([o[name] for o in read.chunk_outputs]), want), name
    with pytest.raises(ValueError, match="must divide"):
        read_planned(gop_clip, SAMPLING, chunk_fn=_views, chunk=2)
