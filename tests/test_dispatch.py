"""The dispatch rule: fused kernels for CUDA frames, the reference elsewhere or when forced."""
import pytest
import torch

from vqametric.io import RGBFrames
from vqametric.sampling import SamplingConfig, make_plan
from vqametric.sampling import dispatch as D
from vqametric.sampling.layouts import QWEN25_VL, internvl_tiles_reference, qwen_vl_patches_reference


def _frames(device="cpu"):
    g = torch.Generator().manual_seed(0)
    return RGBFrames(torch.randint(0, 256, (2, 40, 56, 3), dtype=torch.uint8, generator=g).to(device))


def test_cpu_frames_take_the_reference():
    f = _frames()
    assert not D.kernels_enabled(f, torch.device("cpu"))
    assert torch.equal(D.internvl_tiles(f, 28), internvl_tiles_reference(f, 28))
    pv, grid = D.qwen_vl_patches(f, QWEN25_VL)
    rpv, rgrid = qwen_vl_patches_reference(f, QWEN25_VL)
    assert torch.equal(pv, rpv) and torch.equal(grid, rgrid)


def test_frames_that_need_gradients_take_the_reference():
    x = torch.rand(2, 40, 56, 3, requires_grad=True)
    assert not D.kernels_enabled(RGBFrames(x), torch.device("cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_frames_take_the_kernels_unless_forced(monkeypatch):
    f = _frames("cuda")
    assert D.kernels_enabled(f, torch.device("cuda"))
    monkeypatch.setenv(D.FORCE_REFERENCE_ENV, "1")
    assert not D.kernels_enabled(f, torch.device("cuda"))
    plan = make_plan(2, 40, 56, SamplingConfig(num_segments=2, fragment_grid=2, fragment_patch=8, global_size=16))
    monkeypatch.delenv(D.FORCE_REFERENCE_ENV)
    fused = D.preprocess(f, plan)
    monkeypatch.setenv(D.FORCE_REFERENCE_ENV, "1")
    ref = D.preprocess(f, plan)
    for k in ref:
        assert (fused[k] - ref[k]).abs().max().item() < 1e-5
