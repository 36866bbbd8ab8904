"""Head architecture 6: the EfficientNet-Lite0 trunk, its weight conversion, the fusion head's
gate, clip pooling and the duration-based sampling plan."""
import math

import pytest
import torch
import torch.nn.functional as F

from vqametric.backends.efficientnet_lite import (FEATURES, LITE0_STAGES, STAGE_CHANNELS, EfficientNetLite, SameConv2d,
                                                  convert_state_dict)
from vqametric.backends.fusion_head import ATTRIBUTION_CLASSES_V6, MOTION_GATE, FusionHead
from vqametric.backends.head import HeadConfig, build_head, head_vocabulary
from vqametric.backends.pooling import FREEZE_SCALE, pool
from vqametric.sampling import SamplingConfig, make_plan
from vqametric.sampling.plan import segment_count


def _source_layout(net: EfficientNetLite) -> dict[str, torch.Tensor]:
    """The trunk's weights under the key names of the model-code package (written from its layout:
    ``_conv_stem``/``_bn0``, then ``_blocks.i`` with ``_expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2``), plus the parts that are dropped."""
    sd = net.state_dict()
    src = {"_conv_stem.weight": sd["stem.0.weight"], "_fc.weight": torch.zeros(1000, 1280),
           "_conv_head.weight": torch.zeros(1280, 320, 1, 1)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        src[f"_bn0.{name}"] = sd[f"stem.1.{name}"]
    b = 0
    for s, (repeats, *_rest) in enumerate(LITE0_STAGES):
        for i in range(repeats):
            pre = f"stages.{s}.{i}"
            parts = [("_depthwise_conv", "_bn1", "depthwise"), ("_project_conv", "_bn2", "project")]
            if f"{pre}.expand.0.weight" in sd:
                parts.append(("_expand_conv", "_bn0", "expand"))
            for conv, bn, mine in parts:
                src[f"_blocks.{b}.{conv}.weight"] = sd[f"{pre}.{mine}.0.weight"]
                for name in ("weight", "bias", "running_mean", "running_var"):
                    src[f"_blocks.{b}.{bn}.{name}"] = sd[f"{pre}.{mine}.1.{name}"]
            b += 1
    return src


def test_lite0_trunk_has_the_published_shape():
    net = EfficientNetLite()
    assert sum(r for r, *_ in LITE0_STAGES) == 16                       # 16 MBConv blocks
    assert sum(p.numel() for p in net.parameters()) == 2_958_848        # Lite0 without head conv and classifier
    outs = net(torch.zeros(1, 3, 224, 224))
    assert [o.shape[1] for o in outs] == list(STAGE_CHANNELS)
    assert [o.shape[-1] for o in outs] == [112, 56, 28, 14, 14, 7, 7]
    assert net.stages[2][0].depthwise[0].kernel_size == (5, 5) and net.stages[3][0].depthwise[0].kernel_size == (3, 3)
    assert net.stage_stats(torch.zeros(2, 3, 224, 224)).shape == (2, FEATURES) == (2, 1568)


def test_weight_conversion_round_trips_and_drops_the_classifier():
    torch.manual_seed(0)
    net = EfficientNetLite()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    converted = convert_state_dict(_source_layout(net))
    assert not any("fc" in k or "head" in k for k in converted)
    fresh = EfficientNetLite()
    fresh.load_state_dict(converted, strict=False)
    missing = set(fresh.state_dict()) - set(converted)
    assert all(k.endswith("num_batches_tracked") for k in missing)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x)[-1], net.eval()(x)[-1])
    with pytest.raises(KeyError):
        convert_state_dict({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)})


@pytest.mark.parametrize("size,k,stride,pads", [(224, 3, 2, (0, 1)), (224, 5, 2, (1, 2)), (14, 5, 2, (1, 2)),
                                                (7, 3, 1, (1, 1)), (7, 5, 1, (2, 2)), (15, 3, 2, (1, 1))])
def test_same_padding_matches_tensorflow(size, k, stride, pads):
    """TF "SAME": output ceil(size / stride); total padding (out - 1) * stride + k - size, the odd
    pixel at the end (worked out for each case in ``pads``)."""
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, k, stride, bias=False)
    x = torch.randn(1, 2, size, size)
    y = conv(x)
    assert y.shape[-1] == math.ceil(size / stride)
    ref = F.conv2d(F.pad(x, (pads[0], pads[1], pads[0], pads[1])), conv.weight, stride=stride)
    assert torch.allclose(y, ref)


@pytest.fixture(scope="module")
def fusion_head():
    torch.manual_seed(0)
    head = FusionHead(HeadConfig(arch=6, global_size=64, fragment_size=112, width=8, spatial_stride=2)).eval()
    for p in head.parameters():
        p.data.normal_(0, 0.05)
    return head


def test_frames_that_do_not_change_are_judged_on_space_alone(fusion_head):
    torch.manual_seed(1)
    frag = torch.randn(1, 1, 3, 112, 112).expand(2, 4, 3, 112, 112).contiguous()
    glob = torch.randn(1, 1, 3, 64, 64).expand(2, 4, 3, 64, 64).contiguous()
    glob[1, 2:] += 0.5                                                   # segment 1 changes half-way
    with torch.no_grad():
        out = fusion_head(frag, glob)
    assert out["motion"][0].item() == 0.0 and out["motion"][1].item() > MOTION_GATE
    assert out["score"][0].item() == pytest.approx(out["spatial_score"][0].item(), abs=1e-6)
    assert out["score"][1].item() < out["spatial_score"][1].item()       # the temporal penalty votes
    assert out["attribution"].shape == (2, len(ATTRIBUTION_CLASSES_V6)) and out["severity"].shape == (2, 11)
    assert out["motion_steps"].shape == (2, 3) and out["motion_steps"][1, 0].item() == 0.0   # frames 0 and 1 agree
    assert out["motion_steps"][1, 1].item() > 0 and out["motion"][1].item() == pytest.approx(out["motion_steps"][1].mean().item())
    # a one-frame segment (K = 1) has no motion by definition
    assert fusion_head.motion(glob[:, :1]).tolist() == [0.0, 0.0]


def test_only_the_readouts_train(fusion_head):
    fusion_head.train()
    assert not fusion_head.backbone.training and not fusion_head.base.training
    assert fusion_head.spatial_out.training
    fusion_head.eval()


def test_build_head_and_vocabulary_follow_the_architecture():
    assert type(build_head(HeadConfig(arch=3, global_size=64, fragment_size=112, width=8))).__name__ == "FastHead"
    names, dist, classes = head_vocabulary(6)
    assert names[3:] == ("spatial_score", "motion", "motion_steps") and dist[-2:] == ("black", "freeze")
    assert classes[0] == "none"
    assert head_vocabulary(3)[0] == ("score", "attribution", "severity")


# ---------------------------------------------------------------------------------------------- pooling
def _logits(n, cls=0):
    a = torch.full((n, 12), -5.0)
    a[:, cls] = 5.0
    return a


def test_one_bad_segment_in_ten_pulls_the_clip_down():
    scores = torch.tensor([4.0] * 9 + [1.0])
    p = pool(scores, _logits(10), torch.zeros(10, 11))
    # mean 3.7, worst ceil(0.1 * 10) = 1 segment at 1.0, shortfall 2.7:
    # 3.7 - 0.85 * (2.7 - 0.1) = 1.49
    assert p.score.item() == pytest.approx(1.49)
    assert p.weights.sum().item() == pytest.approx(1.0)
    assert p.weights[-1].item() == pytest.approx(0.015 + 0.85)
    # a clip whose segments agree keeps their score
    assert pool(torch.full((4,), 3.3), _logits(4), torch.zeros(4, 11)).score.item() == pytest.approx(3.3)


def test_the_spread_of_clean_content_costs_nothing():
    # worst 3.40 is 0.0675 below the mean 3.4675: inside the 0.1 slack, the clip is the mean
    scores = torch.tensor([3.5, 3.45, 3.4, 3.52])
    assert pool(scores, _logits(4), torch.zeros(4, 11)).score.item() == pytest.approx(3.4675)
    # 0.3 below: 3.5 - 0.85 * (0.3 - 0.1) = 3.33 with mean 3.5 (3.6 * 3 + 3.2) / 4 = 3.5
    scores = torch.tensor([3.6, 3.6, 3.6, 3.2])
    assert pool(scores, _logits(4), torch.zeros(4, 11)).score.item() == pytest.approx(3.33)


def test_a_still_segment_is_a_freeze_only_in_a_moving_clip():
    freeze = ATTRIBUTION_CLASSES_V6.index("freeze")
    scores, spatial = torch.full((10,), 4.0), torch.full((10,), 4.0)
    moving = torch.tensor([0.01] * 9 + [0.0])
    p = pool(scores, _logits(10), torch.zeros(10, 11), moving, spatial, freeze)
    assert p.frozen.tolist() == [False] * 9 + [True]
    frozen_score = 1 + FREEZE_SCALE * 3.0                                   # 1.75
    assert p.segment_scores[-1].item() == pytest.approx(frozen_score)
    mean = (9 * 4.0 + frozen_score) / 10
    assert p.score.item() == pytest.approx(mean - 0.85 * (mean - frozen_score - 0.1))
    assert ATTRIBUTION_CLASSES_V6[p.dominant] == "freeze"
    still = pool(scores, _logits(10), torch.zeros(10, 11), torch.zeros(10), spatial, freeze)
    assert not still.frozen.any() and still.score.item() == pytest.approx(4.0)
    assert ATTRIBUTION_CLASSES_V6[still.dominant] == "none"


def test_a_hold_inside_a_segment_is_a_freeze_but_holds_that_keep_ending_are_stutter():
    freeze, stutter = ATTRIBUTION_CLASSES_V6.index("freeze"), ATTRIBUTION_CLASSES_V6.index("stutter")
    scores, spatial = torch.full((10,), 4.0), torch.full((10,), 4.0)
    steps = torch.full((10, 3), 0.01)
    steps[4] = torch.tensor([0.01, 0.0, 0.0])        # moving, then the same picture three times
    p = pool(scores, _logits(10), torch.zeros(10, 11), steps.mean(1), spatial, freeze, motion_steps=steps,
             stutter_class=stutter)
    assert p.frozen.tolist() == [i == 4 for i in range(10)]
    # two of three steps still: it keeps 1 - 0.75 * 2/3 = 0.5 of its spatial score above 1
    assert p.segment_scores[4].item() == pytest.approx(1 + 0.5 * 3.0)
    assert ATTRIBUTION_CLASSES_V6[int(p.segment_classes[4])] == "freeze"
    # every segment holds and moves again (each picture held three times): the clip stutters
    held = torch.tensor([[0.0, 0.0, 0.03]] * 10)
    p = pool(scores, _logits(10), torch.zeros(10, 11), held.mean(1), spatial, freeze, motion_steps=held,
             stutter_class=stutter)
    assert p.frozen.all() and p.score.item() == pytest.approx(1 + 0.5 * 3.0)
    assert ATTRIBUTION_CLASSES_V6[p.dominant] == "stutter"
    # a long freeze: segments entirely still after the picture stops, one of them mixed
    long = torch.full((10, 3), 0.03)
    long[3] = torch.tensor([0.03, 0.0, 0.0])
    long[4:] = 0.0
    long[9] = torch.tensor([0.0, 0.0, 0.03])         # ... and it moves on
    p = pool(scores, _logits(10, stutter), torch.zeros(10, 11), long.mean(1), spatial, freeze,
             motion_steps=long, stutter_class=stutter)
    assert ATTRIBUTION_CLASSES_V6[p.dominant] == "freeze"      # even though the head said stutter
    # a static shot: steps of sensor noise only, nothing held
    noise = torch.full((10, 3), 0.0012)
    assert not pool(scores, _logits(10), torch.zeros(10, 11), noise.mean(1), spatial, freeze,
                    motion_steps=noise).frozen.any()
    # a black segment is never a freeze
    black = ATTRIBUTION_CLASSES_V6.index("black")
    p = pool(scores, _logits(10, black), torch.zeros(10, 11), steps.mean(1), spatial, freeze, black, steps)
    assert not p.frozen.any()


def test_without_a_repeated_picture_the_head_cannot_name_stutter_or_freeze():
    freeze, stutter, shake = (ATTRIBUTION_CLASSES_V6.index(c) for c in ("freeze", "stutter", "shake"))
    logits = torch.full((6, 12), -5.0)
    logits[:, stutter] = 3.0
    logits[:, shake] = 2.0
    scores = torch.full((6,), 2.0)
    jitter = torch.rand(6, 3, generator=torch.Generator().manual_seed(0)) * 0.04 + 0.01   # every step moves
    p = pool(scores, logits, torch.zeros(6, 11), jitter.mean(1), scores, freeze, motion_steps=jitter,
             stutter_class=stutter)
    assert ATTRIBUTION_CLASSES_V6[p.dominant] == "shake"
    assert p.attribution[stutter].item() == 0.0 and p.attribution.sum().item() == pytest.approx(1.0)
    # a photo (one picture, nothing moves) is not a freeze either
    logits[:, freeze] = 6.0
    p = pool(scores, logits, torch.zeros(6, 11), torch.zeros(6), scores, freeze, motion_steps=torch.zeros(6, 3),
             stutter_class=stutter)
    assert ATTRIBUTION_CLASSES_V6[p.dominant] == "shake"


def test_pooling_keeps_gradients():
    scores = torch.tensor([3.0, 2.0, 4.0, 4.0], requires_grad=True)
    pool(scores, _logits(4), torch.zeros(4, 11)).score.backward()
    # mean 3.25, worst 2.0 (1.25 below): weights 0.15 / 4 each, plus 0.85 on the worst (index 1)
    assert scores.grad.tolist() == pytest.approx([0.0375, 0.8875, 0.0375, 0.0375])


# ---------------------------------------------------------------------------------------------- plans
@pytest.mark.parametrize("seconds,expected", [(0.04, 4), (3.0, 4), (4.5, 5), (10.0, 10), (10.01, 11), (300.0, 16)])
def test_segments_grow_with_duration(seconds, expected):
    cfg = SamplingConfig(num_segments=4, frames_per_segment=4, segment_seconds=1.0, max_segments=16)
    assert segment_count(seconds, cfg) == expected


def test_a_ten_second_clip_is_sampled_every_second():
    cfg = SamplingConfig(num_segments=4, frames_per_segment=4, segment_seconds=1.0, max_segments=16, global_size=64)
    plan = make_plan(250, 90, 160, cfg, fps=25.0)
    assert plan.num_segments == 10
    starts = plan.frame_indices[::4]
    assert max(b - a for a, b in zip(starts, starts[1:])) <= 25           # no second without a sample
    # the fixed rule is unchanged
    assert make_plan(250, 90, 160, SamplingConfig(num_segments=4, frames_per_segment=4, global_size=64)).num_segments == 4


def test_bad_duration_rules_are_refused():
    from vqametric.errors import SamplingError
    with pytest.raises(SamplingError, match="segment_seconds"):
        SamplingConfig(segment_seconds=-1.0)
    with pytest.raises(SamplingError, match="max_segments"):
        SamplingConfig(num_segments=8, max_segments=4)
