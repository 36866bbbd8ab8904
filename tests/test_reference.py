"""Plain-PyTorch reference preprocessing: colour maths worked out by hand, fragments, resize, grads."""
import pytest
import torch
import torch.nn.functional as F

from vqametric.io import RGBFrames, YUV420Frames
from vqametric.sampling import SamplingConfig, make_plan, preprocess, preprocess_reference, yuv420_to_rgb


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


def test_yuv_and_rgb_paths_agree_after_conversion():
    torch.manual_seed(2)
    f = YUV420Frames(torch.randint(16, 236, (2, 33, 47), dtype=torch.uint8),
                     torch.randint(16, 241, (2, 17, 24), dtype=torch.uint8),
                     torch.randint(16, 241, (2, 17, 24), dtype=torch.uint8), matrix="bt601")
    plan = make_plan(2, 33, 47, SamplingConfig(num_segments=2, fragment_grid=3, fragment_patch=8, global_size=20))
    rgb = yuv420_to_rgb(f.y, f.u, f.v, matrix="bt601").permute(0, 2, 3, 1)
    a, b = preprocess_reference(f, plan), preprocess_reference(RGBFrames(rgb), plan)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6)


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
