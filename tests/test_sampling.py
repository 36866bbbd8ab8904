"""Sampling plans: pure index math with hand-worked expectations."""
import numpy as np
import pytest

from vqametric.errors import SamplingError
from vqametric.sampling import SamplingConfig, fragment_plan, frames_at_fps, make_plan, segment_midpoints


@pytest.mark.parametrize("n,segments,expected", [
    (100, 4, [12, 37, 62, 86]),      # s = 24.75; round(49.5) = 50 (half to even)
    (3, 5, [0, 0, 1, 1, 2]),         # fewer frames than segments: repeats
    (1, 3, [0, 0, 0]),
    (13, 12, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
])
def test_segment_midpoints_hand_worked(n, segments, expected):
    assert segment_midpoints(n, segments) == expected


def test_segment_midpoints_rejects_empty():
    with pytest.raises(SamplingError, match="zero frames"):
        segment_midpoints(0, 4)


def test_runs_of_consecutive_frames_fit_inside_the_clip():
    cfg = SamplingConfig(num_segments=5, frames_per_segment=2)
    plan = make_plan(10, 64, 64, cfg)
    # anchors [0, 2, 4, 5, 7]; each run of 2 starts at min(anchor, n - 2)
    assert plan.frame_indices == (0, 1, 2, 3, 4, 5, 5, 6, 7, 8)
    assert plan.num_segments == 5
    assert [s.start_frame for s in plan.segments] == [0, 2, 4, 6, 8]
    assert plan.segments[-1].end_frame == 10


def test_segments_cover_the_clip_in_time():
    plan = make_plan(50, 32, 32, SamplingConfig(num_segments=4), fps=25.0)
    assert plan.segments[0].start_time == 0.0
    assert plan.segments[-1].end_time == pytest.approx(2.0)
    for a, b in zip(plan.segments, plan.segments[1:]):
        assert a.end_frame == b.start_frame and a.end_time == pytest.approx(b.start_time)


def test_frames_at_fps_variable_frame_rate():
    ts = [0.0, 0.04, 0.08, 0.5, 0.54, 0.58, 1.0, 1.5, 1.54, 1.6]
    # times 0, 0.5, 1.0, 1.5 -> nearest frames by presentation time
    assert frames_at_fps(ts, fps=2.0, max_frames=10) == [0, 3, 6, 7]
    assert len(frames_at_fps(ts, fps=100.0, max_frames=5)) == 5


def test_fps_rule_uses_timestamps():
    ts = [0.0, 0.04, 0.08, 0.5, 0.54, 0.58, 1.0, 1.5, 1.54, 1.6]
    plan = make_plan(10, 32, 32, SamplingConfig(frame_rule="fps", fps=2.0), timestamps=ts)
    assert plan.frame_indices == (0, 3, 6, 7)


def test_fragments_are_seeded_inside_their_cells():
    a = fragment_plan(360, 640, grid=7, patch=32, seed=3)
    b = fragment_plan(360, 640, grid=7, patch=32, seed=3)
    c = fragment_plan(360, 640, grid=7, patch=32, seed=4)
    assert a == b and a != c
    assert a.resize_to is None and a.out_size == 224
    for k, (t, l) in enumerate(zip(a.tops, a.lefts)):
        gy, gx = divmod(k, 7)
        assert gy * 360 // 7 <= t and t + 32 <= (gy + 1) * 360 // 7
        assert gx * 640 // 7 <= l and l + 32 <= (gx + 1) * 640 // 7


def test_small_frames_are_upscaled_before_fragments():
    f = fragment_plan(100, 150, grid=7, patch=32, seed=0)
    assert f.resize_to == (224, 336)          # short side to 7*32, aspect kept
    assert max(f.tops) + 32 <= 224 and max(f.lefts) + 32 <= 336
    tiny = fragment_plan(1, 1, grid=7, patch=32, seed=0)
    assert tiny.resize_to == (224, 224) and set(tiny.tops) == {k * 32 for k in range(7)}


def test_plan_is_deterministic_and_describable():
    cfg = SamplingConfig(num_segments=6, seed=11)
    p1, p2 = make_plan(300, 720, 1280, cfg), make_plan(300, 720, 1280, cfg)
    assert p1 == p2
    d = p1.describe()
    assert d["frame_indices"] == list(p1.frame_indices) and d["fragments"]["grid"] == 7


@pytest.mark.parametrize("kwargs,phrase", [
    ({"frame_rule": "random"}, "frame_rule"),
    ({"num_segments": 0}, "at least 1"),
    ({"frame_rule": "fps", "fps": 0.0}, "fps must be positive"),
    ({"fragment_grid": 7, "fragment_patch": 0}, "both"),
    ({"fragment_grid": 0, "fragment_patch": 0, "global_size": 0}, "at least one spatial view"),
    ({"interpolation": "nearest"}, "interpolation"),
])
def test_config_validation(kwargs, phrase):
    with pytest.raises(SamplingError, match=phrase):
        SamplingConfig(**kwargs)


def test_config_roundtrip_and_unknown_keys():
    cfg = SamplingConfig(num_segments=3, mean=(0.5, 0.5, 0.5))
    assert SamplingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SamplingError, match="unknown sampling option"):
        SamplingConfig.from_dict({"num_segmnts": 3})


def test_frames_at_fps_caps_evenly():
    ts = np.arange(600) / 30.0
    idx = frames_at_fps(ts, fps=30.0, max_frames=4)
    assert idx == [0, 200, 399, 599]


def test_fps_rule_stays_inside_the_clip():
    # 300 frames at 30 fps last 10 s: samples at 0, 0.5, ..., 9.5 (20), none at 10.0
    plan = make_plan(300, 1080, 1920, SamplingConfig(frame_rule="fps", fps=2.0), fps=30.0)
    assert len(plan.frame_indices) == 20 and plan.frame_indices[-1] == 285


def test_variable_frame_rate_timeline_ends_at_the_clip_duration():
    ts = [0.0, 0.2, 0.24, 0.28] + [0.32 + 0.04 * i for i in range(20)]
    plan = make_plan(len(ts), 32, 32, SamplingConfig(num_segments=4), timestamps=ts, duration=1.12)
    assert plan.segments[-1].end_time == pytest.approx(1.12)
    # without a duration the last frame lasts the median interval (0.04 s)
    plan = make_plan(len(ts), 32, 32, SamplingConfig(num_segments=4), timestamps=ts)
    assert plan.segments[-1].end_time == pytest.approx(1.12)
