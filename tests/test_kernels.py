"""Parity of the fused Triton kernels (vqametric.kernels) with the plain-PyTorch references.

On machines without a GPU the kernels run through the Triton interpreter on CPU tensors, which
must be switched on before Triton is first imported, hence the environment line at the very top.
Inputs are fresh random values on every run (the seed is in each failure message); outputs are
written into NaN-filled buffers so that an element the kernel forgot to write cannot pass.

Tolerances: float32 within 1e-5 of the reference after normalisation (measured: below 1e-6);
float16/bfloat16 within one unit in the last place of the output dtype (the kernel and the
reference round nearly equal float32 values, which may fall on either side of a rounding point).
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

pytest.importorskip("triton")

from vqametric import kernels as K  # noqa: E402
from vqametric.io.frames import RGBFrames, YUV420Frames  # noqa: E402
from vqametric.kernels.tables import aa_weights, aa_weights_numpy, chroma_aa_weights, linear_taps  # noqa: E402
from vqametric.kernels.tables import planar_tables  # noqa: E402
from vqametric.sampling import layouts as L  # noqa: E402
from vqametric.sampling.plan import SamplingConfig, make_plan  # noqa: E402
from vqametric.sampling.reference import normalise, preprocess_reference, resize  # noqa: E402
from vqametric.sampling.reference import yuv420_to_rgb, yuv_coefficients  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_kernels_here = pytest.mark.skipif(not K.runs_on("cpu"), reason="the Triton interpreter is not active")

RGB_FORMATS = ["rgb_u8", "rgb_f32", "rgb_f64", "rgb_strided_u8", "rgb_strided_f16"]
YUV_FORMATS = ["i420_8", "i420_10", "nv12_8", "nv12_10"]
MATRICES = ["bt601", "bt709", "bt2020"]
TOL = {torch.float32: (0.0, 1e-5), torch.float16: (2.0 ** -10, 1e-5), torch.bfloat16: (2.0 ** -7, 1e-5)}
MAX_ERR: dict = {}  # dtype -> largest error seen (printed with -s by test_zz_report)


def fresh_seed() -> int:
    return random.SystemRandom().randrange(2 ** 31)


def make_frames(fmt: str, t: int, h: int, w: int, g: torch.Generator, device="cpu", matrix="bt709",
                full_range=False):
    """Random frames of format ``fmt`` (never all zeros)."""
    ch, cw = (h + 1) // 2, (w + 1) // 2

    def ints(shape, top, dtype):
        return torch.randint(0, top + 1, shape, generator=g, dtype=torch.int64).to(dtype).to(device)

    if fmt == "rgb_u8":
        return RGBFrames(ints((t, h, w, 3), 255, torch.uint8))
    if fmt == "rgb_f32":
        return RGBFrames(torch.rand((t, h, w, 3), generator=g).to(device))
    if fmt == "rgb_f64":
        return RGBFrames(torch.rand((t, h, w, 3), generator=g, dtype=torch.float64).to(device))
    if fmt == "rgb_strided_u8":  # channels-last view of a (T, 3, H, W) tensor
        return RGBFrames(ints((t, 3, h, w), 255, torch.uint8).permute(0, 2, 3, 1))
    if fmt == "rgb_strided_f16":
        return RGBFrames(torch.rand((t, 3, h, w), generator=g).half().to(device).permute(0, 2, 3, 1))
    bits = 10 if fmt.endswith("_10") else 8
    dtype = torch.int16 if bits == 10 else torch.uint8
    top = (1 << bits) - 1
    y = ints((t, h, w), top, dtype)
    kw = dict(bit_depth=bits, matrix=matrix, full_range=full_range)
    if fmt.startswith("i420"):
        return YUV420Frames(y, ints((t, ch, cw), top, dtype), ints((t, ch, cw), top, dtype), **kw)
    uv = ints((t, ch, cw, 2), top, dtype)  # NV12 / P010-style interleaved chroma: strided u/v views
    frames = YUV420Frames.from_nv12(y, uv, **kw)
    assert frames.u.stride(-1) == 2
    return frames


def poisoned(shape, dtype, device="cpu"):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def assert_parity(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, msg: str) -> None:
    assert got.shape == ref.shape and got.dtype == ref.dtype == dtype, msg
    assert not torch.isnan(got).any(), f"unwritten (NaN) elements; {msg}"
    rtol, atol = TOL[dtype]
    err = (got.double() - ref.double()).abs()
    MAX_ERR[dtype] = max(MAX_ERR.get(dtype, 0.0), float(err.max()))
    bound = atol + rtol * ref.double().abs()
    assert bool((err <= bound).all()), f"max error {float(err.max()):.3g}; {msg}"


def random_case(rng: random.Random, tiny: bool = False):
    if tiny:
        h, w = rng.choice([(1, 1), (3, 2), (2, 3), (1, 5), (4, 1), (2, 2)])
    else:
        h, w = rng.randint(5, 29), rng.randint(5, 29)
    grid, patch = rng.choice([(1, 3), (2, 2), (2, 3), (3, 2), (2, 5)])
    size = rng.choice([1, 3, 5, 7, 9, 12]) if tiny else rng.randint(2, 13)
    cfg = SamplingConfig(fragment_grid=grid, fragment_patch=patch, global_size=size,
                         interpolation=rng.choice(["bilinear", "bicubic"]), num_segments=2)
    t = rng.randint(1, 3)
    return t, h, w, make_plan(t, h, w, cfg)


def check_preprocess(fmt, seed, dtype=torch.float32, tiny=False, matrix="bt709", full_range=False,
                     device="cpu"):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    t, h, w, plan = random_case(rng, tiny)
    frames = make_frames(fmt, t, h, w, g, device, matrix, full_range)
    msg = (f"seed={seed} fmt={fmt} {matrix} full={full_range} {t}x{h}x{w} grid={plan.fragments.grid} "
           f"patch={plan.fragments.patch} up={plan.fragments.resize_to} S={plan.global_size} "
           f"{plan.interpolation} {dtype}")
    n, s = plan.fragments.out_size, plan.global_size
    out = {"fragments": poisoned((t, 3, n, n), dtype, device), "global_view": poisoned((t, 3, s, s), dtype, device)}
    got = K.preprocess(frames, plan, dtype=dtype, out=out)
    ref = preprocess_reference(frames, plan, dtype=dtype)
    assert set(got) == set(ref) == {"fragments", "global_view"}, msg
    for key in ref:
        assert got[key].data_ptr() == out[key].data_ptr(), f"{key} not written in place; {msg}"
        assert_parity(got[key], ref[key], dtype, f"{key}: {msg}")


# --------------------------------------------------------------------------------------------
# resampling tables


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_aa_tables(mode):
    """The kernels' tables (read back from PyTorch) resample like F.interpolate(antialias=True),
    and agree with the host-side recomputation of PyTorch's formulas (aa_weights_numpy)."""
    seed = fresh_seed()
    rng = random.Random(seed)
    pairs = [(1, 1), (1, 7), (3, 2), (2, 3), (7, 224), (1920, 224), (3840, 448), (224, 224)]
    pairs += [(rng.randint(1, 200), rng.randint(1, 200)) for _ in range(20)]
    worst = 0.0
    for n_in, n_out in pairs:
        xmin, xsize, w, k = aa_weights(n_in, n_out, mode, "cpu")
        x = torch.rand((2, n_in), generator=torch.Generator().manual_seed(seed))
        ref = F.interpolate(x.view(1, 2, 1, n_in), size=(1, n_out), mode=mode, antialias=True)[0, :, 0, :]
        got = torch.zeros((2, n_out))
        for j in range(k):  # sequential sum over the window (PyTorch may fuse the multiply-adds)
            idx = (xmin.long() + j).clamp(max=n_in - 1)
            got = torch.where(j < xsize, got + x[:, idx] * w[:, j], got)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6, msg=f"seed={seed} {n_in}->{n_out}")
        nmin, nsize, nw = aa_weights_numpy(n_in, n_out, mode)
        assert (xmin.numpy() >= nmin).all() and (xmin.numpy() + xsize.numpy() <= nmin + nsize).all()
        dense = torch.zeros(n_out, n_in)
        ndense = torch.zeros(n_out, n_in)
        for i in range(n_out):
            dense[i, xmin[i]:xmin[i] + xsize[i]] = w[i, :xsize[i]]
            ndense[i, nmin[i]:nmin[i] + nsize[i]] = torch.from_numpy(nw[i, :nsize[i]])
        assert (nw[np.arange(nw.shape[1])[None, :] >= nsize[:, None]] == 0).all()
        worst = max(worst, float((dense - ndense).abs().max()))
    # bit-exact on the PyTorch builds we checked; one float32 ulp allowed for other compilers
    assert worst <= 1e-6, worst


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_chroma_and_planar_tables(mode):
    """Chroma windows resize the ceil(n/2) chroma samples of an axis of n luma samples; the planar
    table stacks an axis' luma and chroma windows, weights zero-padded to one K."""
    seed = fresh_seed()
    rng = random.Random(seed)
    sizes = [(1, 1), (1, 7), (3, 3), (2, 3), (5, 2), (1080, 224), (1081, 224), (447, 224), (33, 20)]
    sizes += [(rng.randint(1, 200), rng.randint(1, 200)) for _ in range(10)]
    for n, out in sizes:
        xmin, xsize, w, k = chroma_aa_weights(n, out, mode, "cpu")
        x = torch.rand((2, (n + 1) // 2), generator=torch.Generator().manual_seed(seed))
        ref = resize(x.view(1, 2, 1, -1), (1, out), mode)[0, :, 0, :]
        got = torch.zeros((2, out))
        for j in range(k):
            idx = (xmin.long() + j).clamp(max=x.shape[1] - 1)
            got = torch.where(j < xsize, got + x[:, idx] * w[:, j], got)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6, msg=f"seed={seed} {n}->{out}")
        pmin, psize, pw, pk = planar_tables(n, out, mode, "cpu")
        lmin, lsize, lw, lk = aa_weights(n, out, mode, "cpu")
        assert pk == max(k, lk) and pw.shape == (2 * out, pk)
        assert torch.equal(pmin, torch.cat((lmin, xmin))) and torch.equal(psize, torch.cat((lsize, xsize)))
        assert torch.equal(pw[:out, :lk], lw) and torch.equal(pw[out:, :k], w)
        assert not pw[:out, lk:].any() and not pw[out:, k:].any()


def test_linear_taps():
    seed = fresh_seed()
    rng = random.Random(seed)
    for n_in, n_out in [(1, 5), (2, 3), (5, 224), (180, 224)] + [(rng.randint(1, 60), rng.randint(1, 300))
                                                                for _ in range(10)]:
        i0, i1, w0, w1 = linear_taps(n_in, n_out, "cpu")
        x = torch.rand((1, n_in), generator=torch.Generator().manual_seed(seed))
        ref = F.interpolate(x.view(1, 1, 1, n_in), size=(1, n_out), mode="bilinear", align_corners=False).view(-1)
        got = x[0, i0.long()] * w0 + x[0, i1.long()] * w1
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
        assert ((i1 == i0) | (i1 == i0 + 1)).all() and (w1[i1 == i0] == 0).all()


# --------------------------------------------------------------------------------------------
# preprocess: fragments + global view


def test_is_available_under_interpreter():
    assert K.is_available() == (CUDA or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"))


@needs_kernels_here
@pytest.mark.parametrize("fmt", RGB_FORMATS)
def test_preprocess_rgb(fmt):
    check_preprocess(fmt, fresh_seed())


@needs_kernels_here
@pytest.mark.parametrize("full_range", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("fmt", YUV_FORMATS)
def test_preprocess_yuv(fmt, matrix, full_range):
    check_preprocess(fmt, fresh_seed(), matrix=matrix, full_range=full_range)


@needs_kernels_here
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("fmt", ["rgb_u8", "rgb_strided_f16", "i420_10", "nv12_8"])
def test_preprocess_half_dtypes(fmt, dtype):
    check_preprocess(fmt, fresh_seed(), dtype=dtype, matrix="bt2020", full_range=True)


@needs_kernels_here
@pytest.mark.parametrize("fmt", ["rgb_u8", "rgb_f32", "i420_8", "nv12_10"])
@pytest.mark.parametrize("rep", range(3))
def test_preprocess_tiny_frames(fmt, rep):
    """1x1, 3x2, ... frames: fragments need the bilinear upscale, the global view upscales."""
    check_preprocess(fmt, fresh_seed(), tiny=True, matrix=MATRICES[rep])


@needs_kernels_here
@pytest.mark.parametrize("tiling", ["gpu", "interpreter"])
def test_preprocess_multi_tile(monkeypatch, tiling):
    """Outputs larger than one tile, with the GPU's tile sizes too (the interpreter's default
    tiles are larger), so that tile edges and masks are exercised."""
    monkeypatch.setattr(K, "_TILING", tiling)
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    for fmt, (h, w), size, mode in [("rgb_u8", (11, 70), 37, "bilinear"), ("nv12_8", (9, 13), 70, "bicubic")]:
        cfg = SamplingConfig(fragment_grid=3, fragment_patch=7, global_size=size, interpolation=mode)
        plan = make_plan(2, h, w, cfg)
        frames = make_frames(fmt, 2, h, w, g)
        out = {"fragments": poisoned((2, 3, 21, 21), torch.float32), "global_view": poisoned((2, 3, size, size),
                                                                                            torch.float32)}
        got = K.preprocess(frames, plan, out=out)
        ref = preprocess_reference(frames, plan)
        for key in ref:
            assert_parity(got[key], ref[key], torch.float32, f"{key} seed={seed} {fmt} {tiling}")


@needs_kernels_here
def test_preprocess_realistic_size():
    """A 180x320 clip with the FAST-VQA defaults (7x7 fragments of 32 after an upscale to 224 on the
    short side, 224 global view): source coordinates in the hundreds."""
    seed = fresh_seed()
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    fmt = rng.choice(["rgb_u8", "nv12_10"])
    mode = rng.choice(["bilinear", "bicubic"])
    plan = make_plan(1, 180, 320, SamplingConfig(interpolation=mode))
    frames = make_frames(fmt, 1, 180, 320, g, matrix=rng.choice(MATRICES))
    got = K.preprocess(frames, plan)
    ref = preprocess_reference(frames, plan)
    for key in ref:
        assert_parity(got[key], ref[key], torch.float32, f"{key} seed={seed} {fmt} {mode}")


def _dense_numpy(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """The resampling matrix (float64) from the host-side recomputation of PyTorch's formulas."""
    if n_in == n_out:
        return torch.eye(n_in, dtype=torch.float64)  # F.interpolate leaves an axis of equal size as is
    xmin, xsize, w = aa_weights_numpy(n_in, n_out, mode)
    d = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        d[i, xmin[i]:xmin[i] + xsize[i]] = torch.from_numpy(w[i, :xsize[i]].astype(np.float64))
    return d


def yuv_global_view_by_hand(frames: YUV420Frames, s: int, mode: str, mean, std) -> torch.Tensor:
    """The YUV global view worked out independently in float64: Y' and C' resampled by dense
    matrices (luma H x W -> s x s, chroma ceil(H/2) x ceil(W/2) -> s x s), then RGB, clamped to
    [0, 1], normalised."""
    y_off, y_scale, c_off, c_scale, r_v, g_u, g_v, b_u = yuv_coefficients(frames.bit_depth, frames.matrix,
                                                                          frames.full_range)
    h, w = frames.size
    ry, rx = _dense_numpy(h, s, mode), _dense_numpy(w, s, mode)
    cy, cx = _dense_numpy((h + 1) // 2, s, mode), _dense_numpy((w + 1) // 2, s, mode)
    yp = (frames.y.double() - y_off) * y_scale
    up = (frames.u.double() - c_off) * c_scale
    vp = (frames.v.double() - c_off) * c_scale
    yr, ur, vr = ry @ yp @ rx.T, cy @ up @ cx.T, cy @ vp @ cx.T
    rgb = torch.stack((yr + r_v * vr, yr + g_u * ur + g_v * vr, yr + b_u * ur), dim=1).clamp(0.0, 1.0)
    return (rgb - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)


def _global_only(t, h, w, size, mode):
    return make_plan(t, h, w, SamplingConfig(fragment_grid=0, fragment_patch=0, global_size=size,
                                             interpolation=mode, num_segments=1))


@needs_kernels_here
@pytest.mark.parametrize("rep", range(4))
def test_yuv_global_view_is_resample_then_convert(rep):
    """The YUV global view (kernel and reference) against the definition worked out by hand:
    random planes (converted RGB far outside [0, 1], so the clamp after resampling matters),
    odd and even sizes, down- and upscaling, both filters."""
    seed = fresh_seed()
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    fmt = ["i420_8", "nv12_10", "nv12_8", "i420_10"][rep]
    t, h, w = rng.randint(1, 2), rng.randint(1, 40), rng.randint(1, 40)
    size, mode = rng.choice([3, 8, 13, 24, 45]), rng.choice(["bilinear", "bicubic"])
    frames = make_frames(fmt, t, h, w, g, matrix=rng.choice(MATRICES), full_range=rng.random() < 0.5)
    plan = _global_only(t, h, w, size, mode)
    want = yuv_global_view_by_hand(frames, size, mode, plan.mean, plan.std).float()
    msg = f"seed={seed} {fmt} {t}x{h}x{w} -> {size} {mode} {frames.matrix} full={frames.full_range}"
    ref = preprocess_reference(frames, plan)["global_view"]
    got = K.preprocess(frames, plan, out={"global_view": poisoned((t, 3, size, size), torch.float32)})["global_view"]
    assert_parity(ref, want, torch.float32, "reference: " + msg)
    assert_parity(got, want, torch.float32, "kernel: " + msg)


@needs_kernels_here
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_yuv_global_view_in_range_equals_convert_then_resize(mode):
    """Uniform chroma and RGB inside [0, 1]: resampling the planes then converting equals
    converting then resampling (the conversion is affine, the filter weights sum to one)."""
    seed = fresh_seed()
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    t, h, w = 2, rng.randint(2, 21), rng.randint(2, 21)
    y = torch.randint(60, 181, (t, h, w), generator=g, dtype=torch.int64).to(torch.uint8)
    u = torch.full((t, (h + 1) // 2, (w + 1) // 2), rng.randint(120, 136), dtype=torch.uint8)
    v = torch.full_like(u, rng.randint(120, 136))
    frames = YUV420Frames(y, u, v, matrix=rng.choice(MATRICES))
    size = rng.choice([3, 7, 16, 30])
    plan = _global_only(t, h, w, size, mode)
    rgb = yuv420_to_rgb(y, u, v, matrix=frames.matrix)
    assert 0.0 < float(rgb.min()) and float(rgb.max()) < 1.0
    old = normalise(resize(rgb, (size, size), mode), plan.mean, plan.std)
    msg = f"seed={seed} {t}x{h}x{w} -> {size} {mode} {frames.matrix}"
    assert_parity(preprocess_reference(frames, plan)["global_view"], old, torch.float32, "reference: " + msg)
    assert_parity(K.preprocess(frames, plan)["global_view"], old, torch.float32, "kernel: " + msg)


@needs_kernels_here
def test_yuv_global_view_clamps_after_resampling():
    """A 2x2 BT.709 limited-range frame, two white and two black pixels under one strongly red
    chroma sample (U = 128, V = 240), resized to 1x1. Resampled first: Y' = 1/2, V' = 1/2, so
    R = 1/2 + 1.5748/2 -> 1, G = 1/2 - 0.46812/2 = 0.26594, B = 1/2. Converting first would clamp
    each pixel (white: R 1, G 0.76594; black: R 0.7874, G 0 after the clamp) and average them to
    R 0.8937, G 0.38297."""
    y = torch.tensor([[[235, 16], [235, 16]]], dtype=torch.uint8)
    u, v = torch.full((1, 1, 1), 128, dtype=torch.uint8), torch.full((1, 1, 1), 240, dtype=torch.uint8)
    frames = YUV420Frames(y, u, v, matrix="bt709")
    kr, kb = 0.2126, 0.0722
    g_v = -2 * (1 - kr) * kr / (1 - kr - kb)
    want_rgb = torch.tensor([1.0, 0.5 + g_v * 0.5, 0.5]).view(1, 3, 1, 1)
    for mode in ("bilinear", "bicubic"):
        plan = _global_only(1, 2, 2, 1, mode)
        want = normalise(want_rgb, plan.mean, plan.std)
        old = normalise(resize(yuv420_to_rgb(y, u, v), (1, 1), mode), plan.mean, plan.std)
        assert float((old - want).abs().max()) > 0.3  # convert-then-resize is another definition
        assert_parity(preprocess_reference(frames, plan)["global_view"], want, torch.float32, f"reference {mode}")
        assert_parity(K.preprocess(frames, plan)["global_view"], want, torch.float32, f"kernel {mode}")


@needs_kernels_here
@pytest.mark.parametrize("fmt", ["rgb_f32", "i420_8"])
def test_resize_tile_reads_the_union_of_its_row_windows(fmt):
    """25 -> 45 rows, bicubic: output row 31 falls exactly on source row 17, so its window (its
    non-zero weights) is that one row, while row 30 reads rows 15-18. A tile must read every
    row any of its rows needs, not stop at its last row's window."""
    xmin, xsize, _, _ = aa_weights(25, 45, "bicubic", "cpu")
    assert int(xmin[31] + xsize[31]) < int(xmin[30] + xsize[30])
    g = torch.Generator().manual_seed(fresh_seed())
    frames = make_frames(fmt, 1, 25, 29, g)
    plan = _global_only(1, 25, 29, 45, "bicubic")
    assert_parity(K.preprocess(frames, plan)["global_view"], preprocess_reference(frames, plan)["global_view"],
                  torch.float32, fmt)
    if fmt.startswith("rgb"):
        assert_parity(K.internvl_tiles(frames, 45), L.internvl_tiles_reference(frames, 45), torch.float32,
                      f"internvl {fmt}")


@needs_kernels_here
def test_preprocess_views_subset_and_default_buffers():
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    frames = make_frames("i420_8", 2, 12, 17, g)
    for cfg in (SamplingConfig(fragment_grid=0, fragment_patch=0, global_size=6),
                SamplingConfig(fragment_grid=2, fragment_patch=4, global_size=0)):
        plan = make_plan(2, 12, 17, cfg)
        got = K.preprocess(frames, plan, dtype=torch.bfloat16, device="cpu")
        ref = preprocess_reference(frames, plan, dtype=torch.bfloat16, device="cpu")
        assert set(got) == set(ref)
        for key in ref:
            assert_parity(got[key], ref[key], torch.bfloat16, f"{key} seed={seed}")


@needs_kernels_here
def test_preprocess_empty_clip_and_bad_out():
    plan = make_plan(1, 8, 8, SamplingConfig(fragment_grid=2, fragment_patch=2, global_size=4))
    empty = RGBFrames.trusted(torch.empty((0, 8, 8, 3), dtype=torch.uint8))
    got, ref = K.preprocess(empty, plan), preprocess_reference(empty, plan)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in ref.items()}
    frames = RGBFrames(torch.randint(1, 255, (1, 8, 8, 3), dtype=torch.uint8))
    with pytest.raises(ValueError, match="out"):
        K.preprocess(frames, plan, out={"global_view": torch.empty((1, 3, 5, 5))})
    with pytest.raises(ValueError, match="dtype"):
        K.preprocess(frames, plan, dtype=torch.int32)


def test_requires_grad_takes_the_reference():
    """The kernels are inference-only: differentiable input is handed to the reference."""
    plan = make_plan(1, 6, 6, SamplingConfig(fragment_grid=2, fragment_patch=3, global_size=4))
    x = torch.rand((1, 6, 6, 3), requires_grad=True)
    got = K.preprocess(RGBFrames(x), plan)
    ref = preprocess_reference(RGBFrames(x), plan)
    assert got["global_view"].requires_grad
    torch.testing.assert_close(got["global_view"], ref["global_view"], rtol=0, atol=0)
    got["global_view"].sum().backward()
    assert x.grad is not None


# --------------------------------------------------------------------------------------------
# LMM layouts


@needs_kernels_here
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("fmt", ["rgb_u8", "rgb_strided_f16", "i420_10", "nv12_8"])
def test_internvl_tiles(fmt, dtype):
    seed = fresh_seed()
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    t, h, w = rng.randint(1, 3), rng.randint(1, 30), rng.randint(1, 30)
    size = rng.choice([4, 9, 16])
    frames = make_frames(fmt, t, h, w, g, matrix=rng.choice(MATRICES), full_range=rng.random() < 0.5)
    buf = poisoned((t, 3, size, size), dtype)
    got = K.internvl_tiles(frames, size, dtype=dtype, out=buf)
    ref = L.internvl_tiles_reference(frames, size, dtype=dtype)
    assert got.data_ptr() == buf.data_ptr()
    assert_parity(got, ref, dtype, f"seed={seed} {fmt} {t}x{h}x{w} -> {size}")


SMALL_LAYOUTS = {
    # real patch geometries with pixel budgets small enough for the interpreter
    "qwen2.5": L.QwenVLLayout(patch_size=14, min_pixels=28 * 28, max_pixels=4 * 28 * 28),
    "qwen3": L.QwenVLLayout(patch_size=16, min_pixels=32 * 32, max_pixels=4 * 32 * 32, mean=L.HALF_MEAN,
                            std=L.HALF_STD),
    "p2m2t3": L.QwenVLLayout(patch_size=2, merge_size=2, temporal_patch_size=3, min_pixels=16, max_pixels=400),
    "p3m1": L.QwenVLLayout(patch_size=3, merge_size=1, min_pixels=9, max_pixels=300),
}


@needs_kernels_here
@pytest.mark.parametrize("name", list(SMALL_LAYOUTS))
@pytest.mark.parametrize("fmt", ["rgb_u8", "i420_8", "nv12_10"])
def test_qwen_vl_patches(fmt, name):
    layout = SMALL_LAYOUTS[name]
    seed = fresh_seed()
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    t, h, w = rng.randint(1, 5), rng.randint(1, 40), rng.randint(1, 40)
    frames = make_frames(fmt, t, h, w, g, matrix=rng.choice(MATRICES), full_range=rng.random() < 0.5)
    gt, gh, gw = layout.grid_thw(t, h, w)
    dtype = rng.choice([torch.float32, torch.float16])
    buf = poisoned((gt * gh * gw, layout.patch_dim), dtype)
    got, grid = K.qwen_vl_patches(frames, layout, dtype=dtype, out=buf)
    ref, ref_grid = L.qwen_vl_patches_reference(frames, layout, dtype=dtype)
    assert got.data_ptr() == buf.data_ptr()
    assert grid.tolist() == ref_grid.tolist() == [[gt, gh, gw]]
    assert_parity(got, ref, dtype, f"seed={seed} {fmt} {name} {t}x{h}x{w} grid={grid.tolist()}")


# --------------------------------------------------------------------------------------------
# compiled form (no GPU needed) and GPU runs (skipped without CUDA)


def _ptxas_available() -> bool:
    try:
        import triton.backends.nvidia as nv
    except Exception:
        return False
    return os.path.exists(os.path.join(os.path.dirname(nv.__file__), "bin", "ptxas"))


@pytest.mark.skipif(not _ptxas_available(), reason="Triton's CUDA backend (ptxas) is not installed")
def test_kernels_compile_for_sm90():
    """The interpreter runs the kernels' Python; compiling them for sm_90 checks the form the GPU
    runs (types, loop bounds, layouts) and that nothing spills, the YUV global view's planar mode
    (FMT 2) included."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    res = subprocess.run([sys.executable, "-m", "vqametric.kernels.compile_check", "--arch", "90"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 16 and all("_kernel[" in ln for ln in lines), res.stdout   # 14 + the planar YUV global view
    assert all("STACK:0" in ln for ln in lines if "STACK" in ln), res.stdout  # no register spills


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("fmt", RGB_FORMATS + YUV_FORMATS)
def test_cuda_parity_1080p(fmt):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    frames = make_frames(fmt, 4, 1080, 1920, g, device="cuda", matrix="bt709")
    for mode in ("bilinear", "bicubic"):
        plan = make_plan(4, 1080, 1920, SamplingConfig(interpolation=mode))
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            got = K.preprocess(frames, plan, dtype=dtype)
            ref = preprocess_reference(frames, plan, dtype=dtype)
            for key in ref:
                assert_parity(got[key], ref[key], dtype, f"cuda {key} seed={seed} {fmt} {mode}")


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["rgb_u8", "nv12_10"])
def test_cuda_layouts(fmt):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    frames = make_frames(fmt, 5, 720, 1280, g, device="cuda")
    for size in L.INTERNVL_TILE_SIZES:
        assert_parity(K.internvl_tiles(frames, size), L.internvl_tiles_reference(frames, size), torch.float32,
                      f"internvl {size} seed={seed}")
    for layout in (L.QWEN25_VL, L.QWEN3_VL):
        got, grid = K.qwen_vl_patches(frames, layout, dtype=torch.bfloat16)
        ref, ref_grid = L.qwen_vl_patches_reference(frames, layout, dtype=torch.bfloat16)
        assert grid.tolist() == ref_grid.tolist()
        assert_parity(got, ref, torch.bfloat16, f"qwen p={layout.patch_size} seed={seed}")


def test_zz_report_max_errors():
    """Prints the largest parity error seen per dtype (run with -s to see it)."""
    print("\nmax parity error per dtype:", {str(k): v for k, v in MAX_ERR.items()})
