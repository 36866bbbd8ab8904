"""The plain-PyTorch references of the LMM layouts (vqametric.sampling.layouts)."""
import itertools
import math

import pytest
import torch

from vqametric.errors import SamplingError
from vqametric.io.frames import RGBFrames, YUV420Frames
from vqametric.sampling import layouts as L
from vqametric.sampling.plan import IMAGENET_MEAN, IMAGENET_STD
from vqametric.sampling.reference import yuv420_to_rgb

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


# --------------------------------------------------------------------------------------------
# smart_resize


@pytest.mark.parametrize("h, w, factor, lo, hi, expect", [
    (1080, 1920, 28, 128 * 28 * 28, 768 * 28 * 28, (560, 1008)),   # too many pixels: scaled down, floored
    (100, 100, 28, 56 * 56, 28 * 28 * 1280, (112, 112)),           # nearest multiples
    (20, 30, 28, 128 * 28 * 28, 768 * 28 * 28, (280, 392)),         # too few pixels: scaled up, ceiled
    (42, 70, 28, 1, 10 ** 9, (56, 56)),                             # 1.5 and 2.5 round half to even
    (1, 1, 32, 1, 10 ** 9, (32, 32)),                               # tiny frames get one factor
    (720, 1280, 32, 128 * 32 * 32, 768 * 32 * 32, (640, 1152)),   # 22.5 rounds to 22, then floored
])
def test_smart_resize_values(h, w, factor, lo, hi, expect):
    got = L.smart_resize(h, w, factor, lo, hi)
    assert got == expect
    assert got[0] % factor == 0 and got[1] % factor == 0


def test_smart_resize_bounds_and_errors():
    for h, w in itertools.product([1, 17, 240, 1080, 2160], [1, 31, 426, 1920, 3840]):
        if max(h, w) / min(h, w) > 200:
            with pytest.raises(SamplingError, match="aspect"):
                L.smart_resize(h, w, 28, 128 * 28 * 28, 768 * 28 * 28)
            continue
        rh, rw = L.smart_resize(h, w, 28, 128 * 28 * 28, 768 * 28 * 28)
        assert rh % 28 == 0 and rw % 28 == 0 and rh >= 28 and rw >= 28
        assert rh * rw <= 768 * 28 * 28
    with pytest.raises(SamplingError):
        L.smart_resize(0, 10, 28, 1, 100)


def test_presets():
    assert (L.QWEN25_VL.patch_size, L.QWEN25_VL.merge_size, L.QWEN25_VL.temporal_patch_size) == (14, 2, 2)
    assert L.QWEN25_VL.mean == (0.48145466, 0.4578275, 0.40821073)
    assert L.QWEN25_VL.std == (0.26862954, 0.26130258, 0.27577711)
    assert L.QWEN25_VL.factor == 28 and L.QWEN25_VL.patch_dim == 1176
    assert L.QWEN3_VL.patch_size == 16 and L.QWEN3_VL.factor == 32 and L.QWEN3_VL.patch_dim == 1536
    assert L.INTERNVL_TILE_SIZES == (448, 560)
    with pytest.raises(SamplingError):
        L.QwenVLLayout(min_pixels=10, max_pixels=5)


# --------------------------------------------------------------------------------------------
# patch order


def encoded(t, c, h, w):
    """x[t, c, y, x] = 1000000 t + 100000 c + 1000 y + x (exact in float64)."""
    tt, cc, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(c), torch.arange(h), torch.arange(w),
                                    indexing="ij")
    return (tt * 1_000_000 + cc * 100_000 + yy * 1000 + xx).double()


def test_patchify_hand_checked_values():
    layout = L.QwenVLLayout(patch_size=2, merge_size=2, temporal_patch_size=2, min_pixels=1, max_pixels=10 ** 6)
    x = encoded(3, 3, 8, 8)
    pv, grid = L.patchify_qwen(x, layout)
    assert grid.tolist() == [[2, 4, 4]] and grid.dtype == torch.int64
    assert pv.shape == (2 * 4 * 4, 3 * 2 * 2 * 2)
    # row 0 = patch (y 0-1, x 0-1) of frames 0 and 1; columns (c, t, py, px)
    assert pv[0, :8].tolist() == [0, 1, 1000, 1001, 1_000_000, 1_000_001, 1_001_000, 1_001_001]
    assert pv[0, 8:10].tolist() == [100_000, 100_001]          # channel 1 starts after 2*2*2 columns
    assert pv[1, 0] == 2                                         # right neighbour inside the 2x2 merge block
    assert pv[2, 0] == 2000                                      # patch below, same merge block
    assert pv[3, 0] == 2002
    assert pv[4, 0] == 4                                         # next merge block to the right
    assert pv[8, 0] == 4000                                      # first block of the second block row
    # the clip is padded with its last frame: temporal group 1 holds frames 2 and 2 again
    assert pv[16, 0] == 2_000_000 and pv[16, 4] == 2_000_000


def test_patchify_matches_explicit_formula():
    for p, m, tp, t, h, w in [(2, 2, 2, 3, 8, 12), (3, 1, 3, 4, 6, 9), (1, 3, 2, 2, 6, 3)]:
        layout = L.QwenVLLayout(patch_size=p, merge_size=m, temporal_patch_size=tp, min_pixels=1, max_pixels=10 ** 6)
        x = encoded(t, 3, h, w)
        pv, grid = L.patchify_qwen(x, layout)
        gt, gh, gw = grid[0].tolist()
        assert gt == math.ceil(t / tp) and gh == h // p and gw == w // p
        assert pv.shape == (gt * gh * gw, 3 * tp * p * p)
        seen = torch.zeros_like(pv, dtype=torch.bool)
        for ti in range(gt * tp):
            src = min(ti, t - 1)
            for c, yy, xx in itertools.product(range(3), range(h), range(w)):
                hy, hx = yy // p, xx // p
                row = (((ti // tp) * (gh // m) + hy // m) * (gw // m) + hx // m) * m * m + (hy % m) * m + hx % m
                col = ((c * tp + ti % tp) * p + yy % p) * p + xx % p
                assert pv[row, col] == x[src, c, yy, xx]
                seen[row, col] = True
        assert seen.all()


def test_patchify_rejects_unaligned_sizes():
    with pytest.raises(SamplingError, match="multiple"):
        L.patchify_qwen(torch.zeros(2, 3, 30, 28), L.QWEN25_VL)


# --------------------------------------------------------------------------------------------
# Qwen pixel_values


def test_qwen_identity_size_passes_values_through():
    layout = L.QwenVLLayout(patch_size=2, merge_size=2, min_pixels=16, max_pixels=64, **IDENTITY)
    x = torch.rand(3, 8, 8, 3, dtype=torch.float64) * 0.98 + 0.01
    pv, grid = L.qwen_vl_patches_reference(RGBFrames(x), layout)
    assert grid.tolist() == [[2, 4, 4]]
    assert pv.dtype == torch.float32
    expect, _ = L.patchify_qwen(x.float().permute(0, 3, 1, 2), layout)
    assert torch.equal(pv, expect)
    # hand-checked: row 0, column 0 is frame 0, red, pixel (0, 0); column 5 is frame 1, red, (0, 1)
    assert pv[0, 0] == x[0, 0, 0, 0].float() and pv[0, 5] == x[1, 0, 1, 0].float()


def test_qwen_normalisation_value():
    layout = L.QwenVLLayout(patch_size=2, merge_size=2, min_pixels=16, max_pixels=64)
    frame = torch.full((1, 4, 4, 3), 200, dtype=torch.uint8)
    pv, grid = L.qwen_vl_patches_reference(RGBFrames(frame), layout)
    assert grid.tolist() == [[1, 2, 2]] and pv.shape == (4, 24)
    for c in range(3):
        want = (200 / 255 - L.CLIP_MEAN[c]) / L.CLIP_STD[c]
        torch.testing.assert_close(pv[:, c * 8:(c + 1) * 8], torch.full((4, 8), want), rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", [L.QWEN25_VL, L.QWEN3_VL], ids=["qwen2.5", "qwen3"])
@pytest.mark.parametrize("t", [1, 2, 5])
def test_qwen_presets_grid_matches_patches(layout, t):
    frames = RGBFrames(torch.randint(1, 255, (t, 36, 64, 3), dtype=torch.uint8))
    pv, grid = L.qwen_vl_patches_reference(frames, layout, dtype=torch.bfloat16)
    gt, gh, gw = grid[0].tolist()
    rh, rw = layout.resized_size(36, 64)
    assert (gh * layout.patch_size, gw * layout.patch_size) == (rh, rw)
    assert gt == -(-t // 2) and (gt, gh, gw) == layout.grid_thw(t, 36, 64)
    assert pv.shape == (gt * gh * gw, layout.patch_dim) and pv.dtype == torch.bfloat16
    lo = min((0 - m) / s for m, s in zip(layout.mean, layout.std))
    hi = max((1 - m) / s for m, s in zip(layout.mean, layout.std))
    assert lo - 0.02 <= float(pv.float().min()) and float(pv.float().max()) <= hi + 0.02


# --------------------------------------------------------------------------------------------
# InternVL tiles


def test_internvl_shape_range_and_constant_frame():
    frames = RGBFrames(torch.randint(0, 256, (2, 30, 50, 3), dtype=torch.uint8))
    tiles = L.internvl_tiles_reference(frames, 448)
    assert tiles.shape == (2, 3, 448, 448) and tiles.dtype == torch.float32
    for c in range(3):  # clamped to the normalised image of [0, 1]
        assert float(tiles[:, c].min()) >= (0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] - 1e-6
        assert float(tiles[:, c].max()) <= (1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] + 1e-6
    flat = RGBFrames(torch.full((1, 7, 9, 3), 128, dtype=torch.uint8))
    tiles = L.internvl_tiles_reference(flat, 560, dtype=torch.float16)
    assert tiles.shape == (1, 3, 560, 560) and tiles.dtype == torch.float16
    for c in range(3):
        want = (128 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(tiles[0, c].float(), torch.full((560, 560), want), rtol=1e-3, atol=1e-3)


def test_internvl_same_size_is_normalisation_only():
    x = torch.rand(2, 6, 6, 3)
    tiles = L.internvl_tiles_reference(RGBFrames(x), 6, **IDENTITY)
    assert torch.equal(tiles, x.permute(0, 3, 1, 2))


def test_yuv_input_equals_converted_rgb():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 1024, (3, 10, 13), generator=g).to(torch.int16)
    u = torch.randint(0, 1024, (3, 5, 7), generator=g).to(torch.int16)
    v = torch.randint(0, 1024, (3, 5, 7), generator=g).to(torch.int16)
    yuv = YUV420Frames(y, u, v, bit_depth=10, matrix="bt2020", full_range=False)
    rgb = RGBFrames(yuv420_to_rgb(y, u, v, 10, "bt2020", False).permute(0, 2, 3, 1))
    assert torch.equal(L.internvl_tiles_reference(yuv, 16), L.internvl_tiles_reference(rgb, 16))
    layout = L.QwenVLLayout(patch_size=2, min_pixels=16, max_pixels=200)
    a, ga = L.qwen_vl_patches_reference(yuv, layout)
    b, gb = L.qwen_vl_patches_reference(rgb, layout)
    assert torch.equal(a, b) and torch.equal(ga, gb)


def test_empty_clip_raises():
    empty = RGBFrames.trusted(torch.empty((0, 4, 4, 3), dtype=torch.uint8))
    with pytest.raises(SamplingError):
        L.internvl_tiles_reference(empty)
    with pytest.raises(SamplingError):
        L.qwen_vl_patches_reference(empty)
