"""Synthetic degradations: hand-checked parameters, exact index lists, monotone ladders."""
import numpy as np
import pytest
import torch

from media import moving_frames
from vqametric.train.fast import distortions as D


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def clip():
    return moving_frames(8, 96, 128, seed=1)


def flat(value, t=2, h=64, w=64):
    return np.full((t, h, w, 3), value, np.uint8)


# ---------------------------------------------------------------------------------------------- spatial
@pytest.mark.parametrize("sigma", D.BLUR_SIGMA)
def test_blur_kernel_sums_to_one_and_is_symmetric(sigma):
    k = D.gaussian_kernel(sigma)
    assert len(k) == 2 * int(np.ceil(3 * sigma)) + 1
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k[::-1])
    assert k.argmax() == len(k) // 2


def test_blur_keeps_flat_frames_and_smooths_monotonically(clip):
    np.testing.assert_array_equal(D.gaussian_blur(flat(77), 5), flat(77))
    ps = [psnr(clip, D.gaussian_blur(clip, lv)) for lv in D.LEVELS]
    assert all(a > b for a, b in zip(ps, ps[1:])), ps


@pytest.mark.parametrize("level", D.LEVELS)
def test_noise_std_matches_the_requested_one(level):
    x = flat(128, t=2, h=128, w=128)
    y = D.gaussian_noise(x, level, seed=3)
    measured = (y.astype(np.float64) - 128).std()
    # rounding to integers adds a variance of 1/12
    expected = np.sqrt(D.NOISE_STD[level - 1] ** 2 + 1 / 12)
    assert measured == pytest.approx(expected, rel=0.02)
    assert abs((y.astype(np.float64) - 128).mean()) < 0.2


def test_noise_is_seeded_and_differs_between_frames():
    x = flat(128)
    np.testing.assert_array_equal(D.gaussian_noise(x, 2, seed=5), D.gaussian_noise(x, 2, seed=5))
    assert not np.array_equal(D.gaussian_noise(x, 2, seed=5), D.gaussian_noise(x, 2, seed=6))
    y = D.gaussian_noise(x, 2, seed=5)
    assert not np.array_equal(y[0], y[1])


def test_jpeg_ladder_psnr_decreases_and_odd_sizes_survive(clip):
    ps = [psnr(clip, D.jpeg(clip, lv)) for lv in D.LEVELS]
    assert all(a > b for a, b in zip(ps, ps[1:])), ps
    odd = clip[:2, :63, :95]
    assert D.jpeg(odd, 3).shape == odd.shape


@pytest.mark.parametrize("codec", ["x264", "x265", "av1"])
def test_crf_ladder_psnr_decreases_monotonically(clip, codec):
    ps = [psnr(clip, D.compress(clip, lv, codec=codec)) for lv in D.LEVELS]
    assert all(a > b for a, b in zip(ps, ps[1:])), (codec, ps)


def test_codec_round_trip_keeps_shape_and_frame_count(clip):
    odd = clip[:5, :63, :95]
    out = D.compress(odd, 1, codec="x264")
    assert out.shape == odd.shape and out.dtype == np.uint8
    assert psnr(odd, out) > 25


@pytest.mark.parametrize("codec", ["x264", "x265", "av1"])
def test_codec_round_trip_is_bit_identical_between_runs(codec):
    # 448 px wide: 224-byte chroma rows, where libx264's AVX-512 code used to vary between runs
    x = moving_frames(6, 48, 448, seed=2)
    first = D.encode_decode(x, codec, 30)
    for _ in range(3):
        np.testing.assert_array_equal(D.encode_decode(x, codec, 30), first)


def test_downscale_upscale_ladder(clip):
    outs = [D.downscale_upscale(clip, lv) for lv in D.LEVELS]
    assert all(o.shape == clip.shape for o in outs)
    ps = [psnr(clip, o) for o in outs]
    assert all(a > b for a, b in zip(ps, ps[1:])), ps


def test_exposure_curves_by_hand():
    # under, level 1: 255 * 0.8 * (128/255) ** 1.1 = 95.58 -> 96
    assert D.exposure_lut(1, "under")[128] == 96
    # over, level 3: 255 * 1.8 * (100/255) ** 0.85 = 207.14 -> 207; saturates at the top
    assert D.exposure_lut(3, "over")[100] == 207
    assert D.exposure_lut(3, "over")[255] == 255
    under = [D.exposure(flat(100), lv, direction="under")[0, 0, 0, 0] for lv in D.LEVELS]
    over = [D.exposure(flat(40), lv, direction="over")[0, 0, 0, 0] for lv in D.LEVELS]
    assert all(a > b for a, b in zip(under, under[1:])) and under[0] < 100
    assert all(a < b for a, b in zip(over, over[1:])) and over[0] > 40


def test_colour_desaturation_tint_and_saturation():
    rng = np.random.default_rng(0)
    x = rng.integers(40, 200, (2, 16, 16, 3)).astype(np.uint8)
    grey = D.colour(x, 5, mode="desaturate").astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 1
    mid = flat(128)
    for lv in D.LEVELS:
        shift = D.colour(mid, lv, seed=2, mode="tint")[0, 0, 0].astype(float) - 128
        assert abs(shift.sum()) <= 1.5                       # no brightness change (up to rounding)
        assert np.linalg.norm(shift) == pytest.approx(D.TINT_SHIFT[lv - 1], abs=1.0)
    sat = D.colour(x, 3, mode="saturate").astype(float)
    assert sat.std(-1).mean() > x.astype(float).std(-1).mean()


# ---------------------------------------------------------------------------------------------- temporal
def test_stutter_index_lists_by_hand():
    # hold h = level + 1, out[i] = max(0, ((i + p) // h) * h - p) for the seeded phase p
    lists = {tuple(D.stutter_indices(8, 1, s)) for s in range(20)}
    assert lists == {(0, 0, 2, 2, 4, 4, 6, 6), (0, 1, 1, 3, 3, 5, 5, 7)}
    lists = {tuple(D.stutter_indices(7, 2, s)) for s in range(30)}
    assert lists == {(0, 0, 0, 3, 3, 3, 6), (0, 0, 2, 2, 2, 5, 5), (0, 1, 1, 1, 4, 4, 4)}


def test_freeze_frames_identical_then_jump(clip):
    for lv in D.LEVELS:
        n = 16
        idx = D.freeze_indices(n, lv, seed=lv)
        run = min(D.FREEZE_FRAMES[lv - 1], n - 1)
        s = int(np.argmax(np.diff(idx) == 0))
        assert (idx[s: s + run + 1] == s).all()                     # frame s shown run + 1 times
        np.testing.assert_array_equal(np.delete(idx, range(s + 1, s + run + 1)),
                                      np.delete(np.arange(n), range(s + 1, s + run + 1)))
    # seed 0, 10 frames, level 2 (3 extra frames): frame 5 held, then frame 9
    assert D.freeze_indices(10, 2, seed=0).tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5, 9]
    out = D.freeze(clip, 3, seed=1)
    idx = D.freeze_indices(len(clip), 3, seed=1)
    s = int(np.argmax(np.diff(idx) == 0))
    for j in range(s + 1, s + min(5, len(clip) - 1) + 1):
        np.testing.assert_array_equal(out[j], out[s])


def test_frame_drop_shortens_and_keeps_order(clip):
    for lv in D.LEVELS:
        idx = D.drop_indices(20, lv, seed=lv)
        assert len(idx) == 20 - round(D.DROP_FRACTION[lv - 1] * 20)
        assert idx[0] == 0 and (np.diff(idx) > 0).all()
    assert D.drop_indices(10, 2, seed=0).tolist() == [0, 1, 2, 3, 4, 5, 8, 9]
    assert len(D.frame_drop(clip, 5)) == len(clip) - 4


def test_flicker_alternates_by_the_amplitude():
    out = D.flicker(flat(100, t=6), 1, seed=0)
    vals = out[:, 0, 0, 0].tolist()
    assert sorted(set(vals)) == [96, 104]                           # 100 * (1 -+ 0.04)
    assert all(a != b for a, b in zip(vals, vals[1:]))
    g = D.flicker_gains(4, 5, seed=0)
    assert sorted(set(np.round(g, 6))) == [0.7, 1.3]


def test_shake_translates_frames_within_the_amplitude(clip):
    n, h, w = clip.shape[:3]
    for lv in D.LEVELS:
        off = D.shake_offsets(n, h, w, lv, seed=4)
        amp = max(1.0, D.SHAKE_FRACTION[lv - 1] * min(h, w))
        assert np.abs(off).max() <= round(amp)
    out = D.shake(clip, 5, seed=4)
    off = D.shake_offsets(n, h, w, 5, seed=4)
    m = int(np.abs(off).max())
    for i, (dy, dx) in enumerate(off):
        np.testing.assert_array_equal(out[i, m:h - m, m:w - m], clip[i, m - dy:h - m - dy, m - dx:w - m - dx])


def test_vqathinker_perturbation_index_lists():
    n = 8
    assert D.temporal_perturbation_indices("reverse", n).tolist() == [7, 6, 5, 4, 3, 2, 1, 0]
    # exact lists for seed 0 (numpy default_rng(0) draws, in the order of the docstring)
    assert D.temporal_perturbation_indices("shuffle", n, 0).tolist() == [2, 4, 3, 6, 5, 0, 1, 7]
    assert D.temporal_perturbation_indices("local_shuffle", n, 0).tolist() == [2, 0, 1, 3, 7, 6, 5, 4]
    assert D.temporal_perturbation_indices("jitter", n, 0).tolist() == [1, 1, 2, 2, 3, 4, 5, 6]
    # duplicate: frame 6 inserted twice at position 4 -> [0,1,2,3,6,6,4,5,6,7]; positions 1, 2 dropped
    assert D.temporal_perturbation_indices("duplicate", n, 0).tolist() == [0, 3, 6, 6, 4, 5, 6, 7]
    assert D.temporal_perturbation_indices("black", n, 0).tolist() == [0, 1, -1, -1, 4, 5, -1, 7]


@pytest.mark.parametrize("seed", range(25))
def test_vqathinker_perturbation_properties(seed):
    n = 16
    ident = np.arange(n)
    sh = D.temporal_perturbation_indices("shuffle", n, seed)
    assert sorted(sh.tolist()) == ident.tolist()
    ls = D.temporal_perturbation_indices("local_shuffle", n, seed)
    for s in range(0, n, 4):
        assert sorted(ls[s:s + 4].tolist()) == list(range(s, s + 4))
    ji = D.temporal_perturbation_indices("jitter", n, seed)
    assert np.abs(ji - ident).max() <= 1 and ji.min() >= 0 and ji.max() <= n - 1
    du = D.temporal_perturbation_indices("duplicate", n, seed)
    counts = np.bincount(du, minlength=n)
    # r <= 3 copies are inserted and r other positions dropped (possibly the original of the copied
    # frame, which turns the duplicate into a move, as in VQAThinker's code)
    assert len(du) == n and counts.max() <= 4 and (counts == 0).sum() <= 3
    bl = D.temporal_perturbation_indices("black", n, seed)
    assert 1 <= (bl == D.BLACK).sum() <= 3
    assert (bl[bl >= 0] == ident[bl >= 0]).all()


def test_apply_indices_black_frames(clip):
    out = D.apply_indices(clip, [0, -1, 2])
    np.testing.assert_array_equal(out[0], clip[0])
    assert out[1].max() == 0
    np.testing.assert_array_equal(out[2], clip[2])
    with pytest.raises(ValueError):
        D.apply_indices(clip, [len(clip)])


# ---------------------------------------------------------------------------------------------- clips from stills
def coordinate_image(h=200, w=210):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y % 256, x % 256, (y * 7 + x) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_pan_is_an_integer_constant_velocity_crop(seed):
    img = coordinate_image()
    c = D.make_clip_from_image(img, 12, "pan", seed=seed)
    assert c.shape == (12, 174, 182, 3)                                # 0.875 of each side, even
    ys, xs = c[:, 0, 0, 0].astype(int), c[:, 0, 0, 1].astype(int)
    vy, vx = np.diff(ys), np.diff(xs)
    assert len(set(vy)) == 1 and len(set(vx)) == 1                     # constant velocity
    assert 1 <= max(abs(vy[0]), abs(vx[0])) <= 2                       # margin 26-28 px over 11 steps
    for i in range(12):                                                # exact pixel copies
        np.testing.assert_array_equal(c[i], img[ys[i]:ys[i] + 174, xs[i]:xs[i] + 182])


def test_zoom_starts_or_ends_on_a_native_crop_and_is_seeded():
    img = coordinate_image()
    c = D.make_clip_from_image(img, 8, "zoom", seed=1)
    assert c.shape == (8, 174, 182, 3)
    native = c[0] if np.array_equal(np.diff(c[0, 0, :, 1].astype(int)), np.ones(181)) else c[-1]
    y0, x0 = int(native[0, 0, 0]), int(native[0, 0, 1])
    np.testing.assert_array_equal(native, img[y0:y0 + 174, x0:x0 + 182])
    np.testing.assert_array_equal(c, D.make_clip_from_image(img, 8, "zoom", seed=1))
    assert not np.array_equal(c[0], c[-1])


def _phase_steps(a: np.ndarray) -> np.ndarray:
    """Mean absolute step across column boundaries, per boundary phase modulo 8."""
    d = np.abs(np.diff(a.astype(np.float64), axis=1))
    n = d.shape[1] // 8 * 8
    return d[:, :n].reshape(d.shape[0], -1, 8).mean((0, 1))


def test_downsample_image_area_averages_and_breaks_a_block_grid():
    # halving is exact 2x2 averaging: 4x4 blocks of 0 and 200 give 2x2 blocks of the same values
    checker = np.indices((4, 4)).sum(0) % 2 * 200
    img = np.repeat(np.kron(checker, np.ones((4, 4))).astype(np.uint8)[..., None], 3, axis=2)
    half = D.downsample_image(img, 0.5)
    assert half.shape == (8, 8, 3)
    np.testing.assert_array_equal(half[..., 0], np.kron(checker, np.ones((2, 2))))
    assert D.downsample_image(img, 1.0) is img
    assert D.downsample_image(np.zeros((101, 77, 3), np.uint8), 0.7).shape == (70, 52, 3)    # even sides
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="factor"):
            D.downsample_image(img, bad)
    # an 8-px grid of random block levels: every step sits at one phase; shrunk by 0.7 the steps
    # spread over all phases (a strongest-phase share of 1 becomes under a half)
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(60, 200, (32, 32)), np.ones((8, 8))).astype(np.uint8)
    blocks = np.repeat(blocks[..., None], 3, axis=2)
    before, after = _phase_steps(blocks[..., 0]), _phase_steps(D.downsample_image(blocks, 0.7)[..., 0])
    assert before.max() / before.sum() == pytest.approx(1.0)
    assert after.max() / after.sum() < 0.5


def test_torch_in_torch_out_and_input_untouched(clip):
    t = torch.from_numpy(clip.copy())
    out = D.gaussian_noise(t, 1, seed=0)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    np.testing.assert_array_equal(t.numpy(), clip)
    assert isinstance(D.make_clip_from_image(torch.from_numpy(coordinate_image()), 3), torch.Tensor)


def test_bad_levels_and_names_are_rejected(clip):
    with pytest.raises(ValueError, match="level"):
        D.gaussian_blur(clip, 0)
    with pytest.raises(ValueError, match="level"):
        D.gaussian_blur(clip, 6)
    with pytest.raises(ValueError, match="unknown"):
        D.degrade(clip, "nope", 1)
    with pytest.raises(ValueError, match="uint8"):
        D.gaussian_blur(clip.astype(np.float32), 1)
