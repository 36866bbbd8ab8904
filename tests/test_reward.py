"""vqametric.reward: layouts and ranges, typed errors, evaluation equals the metric, gradient reach,
seeded views, autocast, and a toy generator whose reward rises."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vqametric
from vqametric.backends.gradient_graph import for_gradients
from vqametric.backends.head import load_head
from vqametric.errors import InvalidOption, InvalidVideoInput
from vqametric.registry import get_card
from vqametric.reward import QualityReward
from vqametric.reward.defences import apply_transforms, check_defences, gaussian_blur
from vqametric.reward.views import ViewSchedule, segment_windows
from vqametric.sampling.plan import make_plan

from media import moving_frames


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """(1, 16, 3, 64, 96) float in [0, 1]: a moving textured scene."""
    return torch.from_numpy(moving_frames(16, 64, 96, seed=3)).permute(0, 3, 1, 2)[None].float() / 255.0


@pytest.fixture(scope="module")
def reward() -> QualityReward:
    return QualityReward(layout="BTCHW", value_range=(0, 1))


def test_eval_mode_equals_the_metric(reward, clip):
    reward.eval()
    with torch.no_grad():
        r = reward(clip)
    assert r.shape == (1,) and r.dtype == torch.float32
    assert float(r) == pytest.approx(vqametric.score(clip[0]).score, abs=2e-3)
    with torch.no_grad():
        assert torch.equal(reward(clip), r)            # deterministic
    reward.train()


def test_layouts_and_ranges_give_the_same_reward(reward, clip):
    reward.eval()
    with torch.no_grad():
        a = reward(clip)
        b = QualityReward(layout="BCTHW", value_range=(-1, 1)).eval()(clip.transpose(1, 2) * 2 - 1)
        c = QualityReward(layout="BTCHW", value_range=(0, 255)).eval()(clip * 255)
        n = QualityReward(layout="BTCHW", value_range=(0, 1), normalise=True).eval()(clip)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(a, c, atol=1e-4)
    assert torch.allclose(n, (a - 1) / 4, atol=1e-6) and 0 <= float(n) <= 1
    reward.train()


def test_per_sample_rewards_follow_quality(reward, clip):
    blurred = gaussian_blur(clip[0], 2.5)[None]
    reward.eval()
    with torch.no_grad():
        r = reward(torch.cat([clip, blurred]))
    reward.train()
    assert r.shape == (2,) and torch.all((r >= 1) & (r <= 5))
    assert float(r[0]) > float(r[1]) + 0.3


@pytest.mark.parametrize("kwargs, match", [
    ({"layout": "NCHW", "value_range": (0, 1)}, "layout"),
    ({"layout": "BTCHW", "value_range": (0, 2)}, "value_range"),
    ({"layout": "BTCHW", "value_range": (0, 1), "defences": "views+jpeg"}, "jpeg"),
    ({"layout": "BTCHW", "value_range": (0, 1), "num_views": 0}, "num_views"),
])
def test_bad_options_are_typed(kwargs, match):
    with pytest.raises(InvalidOption, match=match):
        QualityReward(**kwargs)


def test_bad_tensors_are_typed(reward, clip):
    with pytest.raises(InvalidVideoInput, match="layout='BCTHW'"):
        reward(clip.transpose(1, 2))
    with pytest.raises(InvalidVideoInput, match="5-D"):
        reward(clip[0])
    with pytest.raises(InvalidVideoInput, match="floating-point"):
        reward((clip * 255).to(torch.uint8))
    with pytest.raises(InvalidVideoInput, match="value_range"):
        reward(clip * 2 - 1)
    bad = clip.clone()
    bad[0, 3, 0, 5, 5] = float("nan")
    with pytest.raises(InvalidVideoInput, match="NaN"):
        reward(bad)
    assert reward.calls == 0                           # nothing was consumed by the failed calls


def test_every_frame_gets_gradient_within_8_calls():
    frames = torch.from_numpy(moving_frames(32, 64, 96, seed=5)).permute(0, 3, 1, 2)[None].float() / 255.0
    reached = torch.zeros(32, dtype=torch.bool)
    r = QualityReward(layout="BTCHW", value_range=(0, 1), seed=0)
    for _ in range(8):
        x = frames.clone().requires_grad_(True)
        r(x).sum().backward()
        assert torch.isfinite(x.grad).all()
        reached |= x.grad[0].abs().flatten(1).sum(1) > 0
    assert bool(reached.all()), f"frames without gradient: {(~reached).nonzero().flatten().tolist()}"
    # the deterministic metric plan reaches only its 16 planned frames
    x = frames.clone().requires_grad_(True)
    r.eval()(x).sum().backward()
    assert int((x.grad[0].abs().flatten(1).sum(1) > 0).sum()) == 16


def test_views_are_seeded_and_cover_the_segments():
    plan = make_plan(32, 64, 96, get_card("vqametric-fast").sampling, fps=30.0)
    a, b = ViewSchedule(7), ViewSchedule(7)
    calls = [a.frame_indices(plan, 32, c) for c in range(6)]
    assert [b.frame_indices(plan, 32, c) for c in (5, 0, 3)] == [calls[5], calls[0], calls[3]]  # any order
    assert calls[0] != ViewSchedule(8).frame_indices(plan, 32, 0) or calls[1] != ViewSchedule(8).frame_indices(plan, 32, 1)
    assert set().union(*calls[:3]) == set(range(32))
    assert a.plan(plan, 32, 0).fragments != a.plan(plan, 32, 1).fragments
    # windows: start, every k frames from the phase, one ending at stop; short segments shift to fit
    assert segment_windows(0, 10, 4, 40, phase=1) == [0, 1, 5, 6]
    assert segment_windows(30, 32, 4, 32) == [28]


def test_stochastic_calls_repeat_with_the_seed(clip):
    r1 = QualityReward(layout="BTCHW", value_range=(0, 1), seed=3)
    r2 = QualityReward(layout="BTCHW", value_range=(0, 1), seed=3)
    with torch.no_grad():
        first = [r1(clip) for _ in range(3)]
        assert all(torch.equal(x, r2(clip)) for x in first)
    assert len({round(float(x), 6) for x in first}) > 1   # the views differ from call to call


def test_defences_parse_and_transform():
    assert check_defences("views+crop") == ("views", "crop")
    assert check_defences("none") == () and check_defences(None) == ()
    x = torch.rand(4, 3, 40, 60)
    y = apply_transforms(x, ("crop", "rescale", "blur", "noise"), np.random.default_rng(0))
    assert y.shape[0] == 4 and y.shape[-2] <= 40 and y.shape[-1] <= 60 and y.min() >= 0 and y.max() <= 1
    # a blur keeps a constant image and the mean of any image
    assert torch.allclose(gaussian_blur(torch.full((1, 3, 9, 9), 0.3), 1.0), torch.full((1, 3, 9, 9), 0.3), atol=1e-6)


def test_gradient_graph_matches_the_head():
    head, _ = load_head(get_card("vqametric-fast").weights_path("torch"))
    fused = for_gradients(head)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    frag, glob = head.example_inputs(3)
    with torch.no_grad():
        a, b = head(frag, glob), fused(frag, glob)
    assert torch.allclose(a["score"], b["score"], atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules())   # the original is untouched


def test_a_tiny_head_built_here():
    from vqametric.backends.head import FastHead, HeadConfig

    torch.manual_seed(0)
    head = FastHead(HeadConfig(frames_per_segment=2, num_segments=4, fragment_size=56, global_size=32, width=4)).eval()
    reward = QualityReward(layout="BCTHW", value_range=(0, 1), head=head, fps=8.0)
    x = torch.rand(3, 3, 12, 40, 56, requires_grad=True)
    r = reward(x)
    r.sum().backward()
    assert r.shape == (3,) and torch.all((r >= 1) & (r <= 5)) and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(reward.eval()(x), reward.eval()(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast(reward, clip, dtype):
    with torch.autocast("cpu", dtype=dtype):
        x = clip.clone().requires_grad_(True)
        r = reward.eval()(x)
    reward.train()
    r.sum().backward()
    assert r.dtype == torch.float32 and torch.isfinite(r).all() and torch.isfinite(x.grad).all()
    with torch.no_grad():
        assert float(r) == pytest.approx(float(reward.eval()(clip)), abs=0.25 if dtype == torch.bfloat16 else 1e-4)
    reward.train()


def test_a_toy_generator_learns_to_raise_the_reward(clip):
    """A residual 3x3-convolution 'enhancer' of a blurred clip, trained 6 steps against the reward
    (training mode) with an L2 pull towards its input; its deterministic reward rises."""
    torch.manual_seed(0)
    blurred = gaussian_blur(clip[0], 0.7)[None]

    class Enhancer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            torch.nn.init.zeros_(self.conv.weight)
            torch.nn.init.zeros_(self.conv.bias)

        def forward(self, video):                                       # (B, T, 3, H, W)
            b, t = video.shape[:2]
            x = video.flatten(0, 1)
            return (x + self.conv(x)).clamp(0, 1).view(b, t, *x.shape[1:])

    gen = Enhancer()
    reward = QualityReward(layout="BTCHW", value_range=(0, 1), seed=0)
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    with torch.no_grad():
        before = float(reward.eval()(gen(blurred)))
    reward.train()
    for _ in range(6):
        out = gen(blurred)
        loss = -reward(out).mean() + 10.0 * (out - blurred).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(reward.eval()(gen(blurred)))
    assert after > before + 0.1, (before, after)


def test_the_metric_as_a_loss_under_float16_autocast(clip):
    loss_fn = vqametric.create_metric(as_loss=True)
    with torch.no_grad():
        want = float(loss_fn(clip))
    x = clip.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = loss_fn(x)
    loss.backward()
    assert float(loss) == pytest.approx(want, abs=1e-4) and torch.isfinite(x.grad).all()
