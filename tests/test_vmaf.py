"""VMAF through the libvmaf ffmpeg of imageio-ffmpeg: identical clips score near 100, and the score
falls along a compression ladder."""
import numpy as np
import pytest

from vqametric import demo
from vqametric.train.fast import distortions as D

vmaf_mod = pytest.importorskip("vqametric.train.vmaf")


@pytest.fixture(scope="module")
def clip():
    try:
        vmaf_mod.ffmpeg_with_vmaf()
    except vmaf_mod.VmafUnavailable as e:
        pytest.skip(str(e))
    return np.stack(list(demo.scene_frames(6, 96, 128)))


def test_identical_clips_score_near_100(clip):
    assert vmaf_mod.vmaf(clip, clip) > 97


def test_vmaf_falls_along_a_crf_ladder(clip):
    v = [vmaf_mod.vmaf(clip, D.degrade(clip, "x264", lv)) for lv in (1, 3, 5)]
    assert v[0] > v[1] > v[2] and v[0] - v[2] > 20


def test_bad_shapes_are_refused(clip):
    with pytest.raises(ValueError, match="same shape"):
        vmaf_mod.vmaf(clip, clip[:3])
    with pytest.raises(ValueError, match="uint8"):
        vmaf_mod.vmaf(clip.astype(np.float32), clip)
