"""The SlowFast-R50 motion branch: the released trunk's shape and, where pytorchvideo is installed,
bit-for-bit agreement with pytorchvideo's ``slowfast_r50`` wrapped the way the VQAThinker release
wraps it (blocks 0-4, pathway pools of block 5, output pool of block 6)."""
import pytest
import torch

from vqametric.backends.lmm.slowfast import SlowFastConfig, SlowFastMotion, config_from_state_dict


def test_released_trunk_shape():
    m = SlowFastMotion()
    sd = m.state_dict()
    # 660 tensors and 33,644,488 parameters: pytorchvideo's slowfast_r50 without its 2304 -> 400 classifier
    assert len(sd) == 660 and sum(p.numel() for p in m.parameters()) == 33_644_488
    assert m.config.feature_dim == 2304
    assert sd["feature_extraction.0.multipathway_blocks.0.conv.weight"].shape == (64, 3, 1, 7, 7)
    assert sd["feature_extraction.0.multipathway_blocks.1.conv.weight"].shape == (8, 3, 5, 7, 7)
    assert sd["feature_extraction.0.multipathway_fusion.conv_fast_to_slow.weight"].shape == (16, 8, 7, 1, 1)
    assert sd["feature_extraction.4.multipathway_blocks.0.res_blocks.2.branch2.conv_c.weight"].shape == \
        (2048, 512, 1, 1, 1)
    assert "feature_extraction.4.multipathway_fusion.conv_fast_to_slow.weight" not in sd   # no fusion after res5
    assert config_from_state_dict({k: list(v.shape) for k, v in sd.items()}) == SlowFastConfig()


def test_pathways_and_frame_count():
    frames = torch.arange(12).float().view(1, 1, 12, 1, 1).expand(1, 3, 12, 1, 1)
    slow, fast = SlowFastMotion.pathways(frames)
    assert slow[0, 0, :, 0, 0].tolist() == [0, 5, 11] and fast.shape[2] == 12   # linspace(0, 11, 3) truncated
    tiny = SlowFastMotion(SlowFastConfig(width=8, depths=(1, 1, 1, 1))).eval()
    with torch.no_grad():
        assert tiny(torch.randn(2, 3, 8, 64, 64)).shape == (2, tiny.config.feature_dim)
        with pytest.raises(ValueError, match="multiple of alpha"):
            tiny(torch.randn(1, 3, 6, 64, 64))


def test_matches_pytorchvideo():
    slowfast = pytest.importorskip("pytorchvideo.models.slowfast")
    torch.manual_seed(0)
    ref = slowfast.create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1)).eval()
    blocks = list(ref.children())[0]
    trunk = torch.nn.Sequential(*[blocks[i] for i in range(5)])
    for name, buf in trunk.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
    sd = {"feature_extraction." + k: v for k, v in trunk.state_dict().items()}
    mine = SlowFastMotion(config_from_state_dict({k: list(v.shape) for k, v in sd.items()})).eval()
    mine.load_state_dict(sd, strict=True)
    frames = torch.randn(1, 3, 12, 224, 224)
    with torch.no_grad():
        idx = torch.linspace(0, 11, 3).long()
        x = trunk([frames.index_select(2, idx), frames])
        x = [t.repeat_interleave(4, dim=2) for t in x]
        want = torch.cat([blocks[6].output_pool(blocks[5].pool[i](x[i])) for i in range(2)], 1).flatten(1)
        assert torch.equal(mine(frames), want)
