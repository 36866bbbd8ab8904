"""Plain-PyTorch reference preprocessing: colour maths worked out by hand, fragments, resize, grads."""
import pytest
import torch
import torch.nn.functional as F

from vqametric.io import RGBFrames, YUV420Frames
from vqametric.sampling import SamplingConfig, make_plan, preprocess, preprocess_reference, reference, yuv420_to_rgb


def _planes(y, u, v, h=2, w=2, dtype=torch.uint8):
    return (torch.full((1, h, w), y, dtype=dtype), torch.full((1, (h + 1) // 2, (w + 1) // 2), u, dtype=dtype),
            torch.full((1, (h + 1) // 2, (w + 1) // 2), v, dtype=dtype))


def test_limited_range_black_white_grey_8bit():
    for matrix in ("bt601", "bt709", "bt2020"):
        assert torch.allclose(yuv420_to_rgb(*_planes(16, 128, 128), matrix=matrix), torch.zeros(1, 3, 2, 2))
        assert torch.allclose(yuv420_to_rgb(*_planes(235, 128, 128), matrix=matrix), torch.ones(1, 3, 2, 2))
        grey = yuv420_to_rgb(*_planes(126, 128, 128), matrix=matrix)
        assert torch.allclose(grey, torch.full_like(grey, 110 / 219))    # (126 - 16) / 219 = 0.50228


def test_bt709_limited_red_by_hand():
    # BT.709 limited-range red is Y=63, Cb=102, Cr=240:
    # R = 47/219 + 1.5748 * 112/224 = 1.0020 -> 1;  B = 47/219 + 1.8556 * (-26/224) = -0.0008 -> 0
    # G = 47/219 - 0.18732 * (-26/224) - 0.46812 * 112/224 = 0.00229
    rgb = yuv420_to_rgb(*_planes(63, 102, 240), matrix="bt709")[0, :, 0, 0]
    assert rgb[0].item() == 1.0 and rgb[2].item() == 0.0
    assert rgb[1].item() == pytest.approx(0.00229, abs=2e-5)


def test_bt601_and_bt709_differ_on_colour():
    a = yuv420_to_rgb(*_planes(100, 90, 200), matrix="bt601")
    b = yuv420_to_rgb(*_planes(100, 90, 200), matrix="bt709")
    assert (a - b).abs().max() > 0.05


def test_10bit_limited_and_full_range():
    black = yuv420_to_rgb(*_planes(64, 512, 512, dtype=torch.int16), bit_depth=10)
    white = yuv420_to_rgb(*_planes(940, 512, 512, dtype=torch.int16), bit_depth=10)
    assert torch.allclose(black, torch.zeros_like(black)) and torch.allclose(white, torch.ones_like(white))
    full_white = yuv420_to_rgb(*_planes(1023, 512, 512, dtype=torch.int16), bit_depth=10, full_range=True)
    assert torch.allclose(full_white, torch.ones_like(full_white))
    mid = yuv420_to_rgb(*_planes(512, 512, 512, dtype=torch.int16), bit_depth=10, full_range=True)
    assert torch.allclose(mid, torch.full_like(mid, 512 / 1023))


def test_chroma_is_replicated_over_2x2_blocks_with_odd_sizes():
    y = torch.full((1, 3, 5), 126, dtype=torch.uint8)
    u = torch.tensor([[[128, 128, 128], [128, 128, 60]]], dtype=torch.uint8)
    v = torch.full((1, 2, 3), 128, dtype=torch.uint8)
    rgb = yuv420_to_rgb(y, u, v)
    assert rgb.shape == (1, 3, 3, 5)
    blue = rgb[0, 2]
    assert torch.all(blue[2, 4] < blue[0, 0])            # the odd corner uses chroma sample (1, 2)
    assert torch.allclose(blue[:2, :4], blue[0, 0].expand(2, 4))


def test_fragments_copy_native_pixels():
    torch.manual_seed(0)
    data = torch.randint(0, 256, (2, 300, 400, 3), dtype=torch.uint8)
    cfg = SamplingConfig(num_segments=2, fragment_grid=4, fragment_patch=16, global_size=32, mean=(0, 0, 0),
                         std=(1, 1, 1))
    plan = make_plan(2, 300, 400, cfg)
    out = preprocess_reference(RGBFrames(data), plan)
    frag = out["fragments"]
    assert frag.shape == (2, 3, 64, 64) and out["global_view"].shape == (2, 3, 32, 32)
    f = plan.fragments
    for k in (0, 5, 15):
        gy, gx = divmod(k, 4)
        want = data[1, f.tops[k]:f.tops[k] + 16, f.lefts[k]:f.lefts[k] + 16].permute(2, 0, 1).float() / 255
        assert torch.equal(frag[1, :, gy * 16:(gy + 1) * 16, gx * 16:(gx + 1) * 16], want)


def test_global_view_is_antialiased_resize_and_normalised():
    torch.manual_seed(1)
    x = torch.rand(3, 3, 90, 120)
    cfg = SamplingConfig(num_segments=3, fragment_grid=2, fragment_patch=8, global_size=40)
    plan = make_plan(3, 90, 120, cfg)
    out = preprocess_reference(RGBFrames(x.permute(0, 2, 3, 1)), plan)
    want = F.interpolate(x, size=(40, 40), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    assert torch.allclose(out["global_view"], (want - mean) / std, atol=1e-6)


def test_uniform_grey_normalises_to_known_values():
    x = torch.full((1, 40, 40, 3), 0.5)
    cfg = SamplingConfig(num_segments=1, fragment_grid=2, fragment_patch=8, global_size=16)
    out = preprocess_reference(RGBFrames(x), make_plan(1, 40, 40, cfg))
    for c, (m, s) in enumerate(zip(cfg.mean, cfg.std)):
        assert torch.allclose(out["fragments"][:, c], torch.tensor((0.5 - m) / s))


def test_yuv_and_rgb_paths_agree_on_fragments():
    """Fragments convert the gathered pixels, so YUV frames give the fragments of their RGB."""
    torch.manual_seed(2)
    f = YUV420Frames(torch.randint(16, 236, (2, 33, 47), dtype=torch.uint8),
                     torch.randint(16, 241, (2, 17, 24), dtype=torch.uint8),
                     torch.randint(16, 241, (2, 17, 24), dtype=torch.uint8), matrix="bt601")
    plan = make_plan(2, 33, 47, SamplingConfig(num_segments=2, fragment_grid=3, fragment_patch=8, global_size=20))
    rgb = yuv420_to_rgb(f.y, f.u, f.v, matrix="bt601").permute(0, 2, 3, 1)
    a, b = preprocess_reference(f, plan), preprocess_reference(RGBFrames(rgb), plan)
    assert torch.allclose(a["fragments"], b["fragments"], atol=1e-6)
    # the global view resamples the planes before converting: another definition on such frames
    assert (a["global_view"] - b["global_view"]).abs().max() > 0.1


def test_yuv_global_view_equals_rgb_path_when_in_range_and_chroma_uniform():
    """The conversion is affine and the filter weights sum to one: with uniform chroma and RGB
    inside [0, 1], resampling the planes then converting equals converting then resampling."""
    torch.manual_seed(3)
    y = torch.randint(60, 181, (2, 33, 47), dtype=torch.uint8)
    u, v = torch.full((2, 17, 24), 121, dtype=torch.uint8), torch.full((2, 17, 24), 133, dtype=torch.uint8)
    f = YUV420Frames(y, u, v, matrix="bt601")
    rgb = yuv420_to_rgb(y, u, v, matrix="bt601")
    assert rgb.min() > 0 and rgb.max() < 1
    for mode in ("bilinear", "bicubic"):
        plan = make_plan(2, 33, 47, SamplingConfig(num_segments=2, fragment_grid=3, fragment_patch=8, global_size=20,
                                                   interpolation=mode))
        a = preprocess_reference(f, plan)
        b = preprocess_reference(RGBFrames(rgb.permute(0, 2, 3, 1)), plan)
        assert torch.allclose(a["global_view"], b["global_view"], atol=2e-6), mode


def _unnormalise(x, cfg):
    return x * torch.tensor(cfg.std).view(1, 3, 1, 1) + torch.tensor(cfg.mean).view(1, 3, 1, 1)


def test_yuv_global_view_clamps_after_resampling_by_hand():
    # 2x2 BT.709 limited: white (235) and black (16) columns under one red chroma sample (U 128, V 240),
    # resized to 1x1. Planes first: Y' = 1/2, V' = 1/2: R = 1/2 + 1.5748/2 = 1.29 -> 1,
    # G = 1/2 - 0.46812/2 = 0.26594, B = 1/2. (Converting first would clamp each pixel, R 0.8937, G 0.38297.)
    y = torch.tensor([[[235, 16], [235, 16]]], dtype=torch.uint8)
    f = YUV420Frames(y, torch.full((1, 1, 1), 128, dtype=torch.uint8), torch.full((1, 1, 1), 240, dtype=torch.uint8))
    cfg = SamplingConfig(num_segments=1, fragment_grid=0, fragment_patch=0, global_size=1)
    rgb = _unnormalise(preprocess_reference(f, make_plan(1, 2, 2, cfg))["global_view"], cfg)[0, :, 0, 0]
    assert rgb.tolist() == pytest.approx([1.0, 0.26594, 0.5], abs=2e-5)


def test_yuv_global_view_resamples_the_chroma_plane_odd_size_by_hand():
    # 3x3 luma (grey, Y' = 110/219), chroma rows U = 128 and U = 72 (U' = 0 and -1/4), resized to 3x3:
    # luma stays, the 2-row chroma plane is upscaled to 3 rows over the padded 4-row picture
    # (bilinear, centres at chroma coordinates 1/3, 1, 5/3): U' = 0, -1/8, -1/4, so
    # B = Y' + 1.8556 U' = 0.50228, 0.27033, 0.03838 (replicated chroma would give 0.50228, 0.50228, 0.03838).
    y = torch.full((1, 3, 3), 126, dtype=torch.uint8)
    u = torch.tensor([[[128, 128], [72, 72]]], dtype=torch.uint8)
    f = YUV420Frames(y, u, torch.full((1, 2, 2), 128, dtype=torch.uint8))
    cfg = SamplingConfig(num_segments=1, fragment_grid=0, fragment_patch=0, global_size=3)
    rgb = _unnormalise(preprocess_reference(f, make_plan(1, 3, 3, cfg))["global_view"], cfg)[0]
    assert rgb[2, :, 0].tolist() == pytest.approx([0.50228, 0.27033, 0.03838], abs=2e-5)
    assert torch.allclose(rgb[2], rgb[2, :, :1].expand(3, 3), atol=1e-6)
    assert torch.allclose(rgb[0], torch.full((3, 3), 110 / 219), atol=1e-6)  # V' = 0: R = Y'


def test_yuv_global_view_builds_no_full_resolution_rgb(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("converted a whole frame to RGB")

    monkeypatch.setattr(reference, "yuv420_to_rgb", refuse)
    f = YUV420Frames(torch.randint(16, 236, (3, 64, 80), dtype=torch.uint8),
                     torch.randint(16, 241, (3, 32, 40), dtype=torch.uint8),
                     torch.randint(16, 241, (3, 32, 40), dtype=torch.uint8))
    plan = make_plan(3, 64, 80, SamplingConfig(num_segments=3, fragment_grid=2, fragment_patch=16, global_size=24))
    out = preprocess_reference(f, plan)
    assert out["global_view"].shape == (3, 3, 24, 24) and out["fragments"].shape == (3, 3, 32, 32)


def test_gradients_reach_the_pixels_and_dtypes():
    x = torch.rand(2, 3, 50, 60, requires_grad=True)
    plan = make_plan(2, 50, 60, SamplingConfig(num_segments=2, fragment_grid=2, fragment_patch=16, global_size=24))
    out = preprocess(RGBFrames(x.permute(0, 2, 3, 1)), plan)
    (out["fragments"].sum() + out["global_view"].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    half = preprocess_reference(RGBFrames(x.detach().permute(0, 2, 3, 1)), plan, dtype=torch.bfloat16)
    assert half["fragments"].dtype == torch.bfloat16


def test_uint16_planes_are_accepted():
    y = torch.full((2, 6, 6), 940, dtype=torch.uint16)
    c = torch.full((2, 3, 3), 512, dtype=torch.uint16)
    f = YUV420Frames(y, c, c.clone(), bit_depth=10)
    assert f.y.dtype == torch.int32
    assert torch.allclose(yuv420_to_rgb(f.y, f.u, f.v, 10), torch.ones(2, 3, 6, 6))


def test_an_empty_clip_gives_empty_views_of_every_kind():
    plan = make_plan(1, 8, 8, SamplingConfig(num_segments=1, fragment_grid=2, fragment_patch=4, global_size=6))
    for frames in (RGBFrames.trusted(torch.empty((0, 8, 8, 3), dtype=torch.uint8)),):
        out = preprocess_reference(frames, plan)
        assert out["fragments"].shape == (0, 3, 8, 8) and out["global_view"].shape == (0, 3, 6, 6)
