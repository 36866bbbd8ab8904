import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from media import moving_frames, write_video  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and leave the other core to other jobs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_head_files(tmp_path_factory):
    """A randomly initialised small head saved as safetensors and ONNX (same weights)."""
    from vqametric.backends import FastHead, HeadConfig, save_head
    from vqametric.backends.onnx_runtime import export_onnx

    torch.manual_seed(0)
    head = FastHead(HeadConfig(frames_per_segment=2, fragment_size=112, global_size=64, width=8)).eval()
    sampling = head.sampling_config(num_segments=4)
    d = tmp_path_factory.mktemp("head")
    st = str(d / "tiny.safetensors")
    ox = str(d / "tiny.onnx")
    save_head(head, st, sampling, name="tiny-test-head")
    export_onnx(head, ox, sampling, name="tiny-test-head")
    return {"head": head, "safetensors": st, "onnx": ox, "sampling": sampling}


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "sample.mp4"
    return write_video(path, moving_frames(30, 72, 128), fps=25)
