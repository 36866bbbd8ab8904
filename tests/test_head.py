"""Fast head: torch vs ONNX Runtime parity, safetensors round trip, refusing unsafe weights."""
import math
import os

import numpy as np
import pytest
import torch

from vqametric.backends import DISTORTIONS, FastHead, HeadConfig, load_head, save_head
from vqametric.backends.head import read_head_metadata
from vqametric.backends.onnx_runtime import OnnxHead
from vqametric.errors import WeightsNotFound
from vqametric.registry import card_from_weights


@pytest.mark.parametrize("n", [1, 3, 7])
def test_onnx_matches_torch_float32(tiny_head_files, n):
    head = tiny_head_files["head"]
    runner = OnnxHead(tiny_head_files["onnx"])
    torch.manual_seed(n)
    frag, glob = head.example_inputs(n)
    with torch.no_grad():
        want = head(frag, glob)
    got = runner(frag, glob)
    for k in ("score", "attribution", "severity"):
        assert got[k].shape == want[k].shape
        assert (got[k] - want[k]).abs().max().item() < 1e-4, k


def test_outputs_have_documented_ranges(tiny_head_files):
    head = tiny_head_files["head"]
    frag, glob = head.example_inputs(4)
    out = head(frag, glob)
    assert out["score"].shape == (4,) and torch.all((out["score"] >= 1) & (out["score"] <= 5))
    assert out["severity"].shape == (4, len(DISTORTIONS))
    assert torch.all((out["severity"] >= 0) & (out["severity"] <= 1))
    assert out["attribution"].shape == (4, len(DISTORTIONS) + 1)


def test_single_frame_segments_work():
    head = FastHead(HeadConfig(frames_per_segment=1, fragment_size=56, global_size=32, width=4)).eval()
    out = head(*head.example_inputs(2))
    assert torch.isfinite(out["score"]).all()


def test_safetensors_round_trip(tiny_head_files, tmp_path):
    loaded, meta = load_head(tiny_head_files["safetensors"])
    assert meta["name"] == "tiny-test-head" and meta["sampling"]["num_segments"] == 4
    frag, glob = tiny_head_files["head"].example_inputs(2)
    with torch.no_grad():
        a = tiny_head_files["head"](frag, glob)["score"]
        b = loaded(frag, glob)["score"]
    assert torch.equal(a, b)


def test_onnx_file_is_self_contained(tiny_head_files):
    folder = os.path.dirname(tiny_head_files["onnx"])
    assert sorted(f for f in os.listdir(folder) if not f.endswith((".onnx", ".safetensors"))) == []
    meta = read_head_metadata(tiny_head_files["onnx"])
    assert meta["head"]["fragment_size"] == 112


def test_onnx_file_carries_no_trace_of_the_exporting_machine(tiny_head_files):
    """The exporter records Python stack traces (source paths) per node; export_onnx strips them."""
    data = open(tiny_head_files["onnx"], "rb").read()
    assert b'File "' not in data and b"stack_trace" not in data
    assert os.path.dirname(os.path.abspath(vqametric_src())).encode() not in data


def vqametric_src() -> str:
    import vqametric
    return os.path.dirname(vqametric.__file__)


def test_card_from_weights_finds_both_runtimes(tiny_head_files):
    card = card_from_weights(tiny_head_files["onnx"])
    assert card.name == "tiny-test-head" and set(card.available_runtimes()) == {"onnx", "torch"}


def test_pickle_checkpoint_is_refused(tmp_path):
    p = tmp_path / "head.pt"
    torch.save({"w": torch.zeros(1)}, p)
    with pytest.raises(WeightsNotFound, match="pickle"):
        load_head(p)


def test_missing_and_foreign_weights(tmp_path):
    with pytest.raises(WeightsNotFound, match="does not exist"):
        load_head(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file
    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(WeightsNotFound, match="no vqametric head metadata"):
        load_head(p)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(64))
    with pytest.raises(WeightsNotFound, match="not a readable safetensors"):
        load_head(junk)


def test_architecture_mismatch_is_reported(tiny_head_files, tmp_path):
    other = FastHead(HeadConfig(frames_per_segment=2, fragment_size=112, global_size=64, width=12))
    p = tmp_path / "mismatch.safetensors"
    save_head(other, p)
    meta_bad = tmp_path / "bad.safetensors"
    from safetensors.torch import load_file, save_file
    state = load_file(str(p))
    import json
    from vqametric.backends.head import FORMAT_KEY
    save_file(state, str(meta_bad), metadata={FORMAT_KEY: json.dumps(read_head_metadata(
        tiny_head_files["safetensors"]))})
    with pytest.raises(WeightsNotFound, match="does not match the head architecture"):
        load_head(meta_bad)


def test_files_of_an_older_head_architecture_are_refused(tmp_path):
    import json
    from safetensors.torch import save_file
    from vqametric.backends.head import FORMAT_KEY
    p = tmp_path / "old.safetensors"
    meta = {"head": {"frames_per_segment": 2, "fragment_size": 224, "global_size": 128, "width": 24},
            "sampling": {}, "name": "old", "version": "0.1.0"}
    save_file({"w": torch.zeros(1)}, str(p), metadata={FORMAT_KEY: json.dumps(meta)})
    with pytest.raises(WeightsNotFound, match="architecture 1.*Retrain"):
        load_head(p)


# ---------------------------------------------------------------------------------------------
# the hand-made statistics the head feeds its MLP
def _normalised(rgb01: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (rgb01 - mean) / std


def _pan(texture: torch.Tensor, positions, size: int = 64) -> torch.Tensor:
    """Grey frames (K, 3, size, size) cut from ``texture`` at horizontal offsets ``positions``."""
    frames = torch.stack([texture[:, p:p + size] for p in positions])
    return _normalised(frames[:, None].expand(-1, 3, -1, -1))


def _temporal_stats(positions, brightness=None):
    head = FastHead(HeadConfig(frames_per_segment=len(positions), fragment_size=56, global_size=64, width=4))
    tex = torch.rand(1, 1, 64, 120, generator=torch.Generator().manual_seed(0))
    for _ in range(3):     # smooth texture: a 1-px step changes the frame in proportion to its size
        tex = torch.nn.functional.avg_pool2d(tex, 7, 1, 3, count_include_pad=False)
    tex = tex[0, 0]
    gv = _pan(tex, positions)
    if brightness is not None:
        gv = _normalised((_pan(tex, positions) * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
                          + torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
                         * torch.tensor(brightness).view(-1, 1, 1, 1))
    _, stats = head._temporal(gv[None])
    names = ("log_step", "rel_min", "rel_max", "cos_min", "cos_mean", "luma_jump", "luma_std", "still")
    return dict(zip(names, stats[0].tolist()))


def test_temporal_stats_of_a_steady_pan():
    s = _temporal_stats([0, 1, 2, 3])
    assert s["rel_max"] - s["rel_min"] < 0.05          # equal steps (below 1 only by the 1e-3 floor)
    assert s["cos_min"] > 0.9 and s["luma_std"] < 0.01


def test_temporal_stats_see_a_freeze_a_jump_and_a_reversal():
    steady = _temporal_stats([0, 1, 2, 3])
    freeze = _temporal_stats([0, 1, 1, 2])             # one repeated frame: a zero step
    assert freeze["rel_min"] < 0.01 and steady["rel_min"] > 0.7
    jump = _temporal_stats([0, 1, 3, 4])             # a dropped frame: one step twice as far
    assert jump["rel_max"] > steady["rel_max"] + 0.3 and jump["rel_min"] < steady["rel_min"] - 0.1
    back = _temporal_stats([0, 1, 2, 1])               # the motion turns back: the last step undoes the one before
    assert back["cos_min"] < -0.9 and steady["cos_min"] > back["cos_min"] + 0.5


def test_temporal_stats_see_flicker():
    steady = _temporal_stats([0, 1, 2, 3])
    flick = _temporal_stats([0, 1, 2, 3], brightness=[1.0, 0.7, 1.0, 0.7])
    assert flick["luma_std"] > steady["luma_std"] + 0.05 and flick["luma_jump"] > steady["luma_jump"] + 0.5


def _colour_stats(rgb01: torch.Tensor) -> dict[str, float]:
    head = FastHead(HeadConfig(frames_per_segment=1, fragment_size=56, global_size=32, width=4))
    names = ("luma", "luma_std", "clip_hi", "clip_lo", "rg", "yb", "rg_std", "yb_std", "chroma")
    return dict(zip(names, head._colour_stats(_normalised(rgb01)[None])[0].tolist()))


def test_colour_stats_of_flat_frames_worked_by_hand():
    grey = _colour_stats(torch.full((3, 8, 8), 0.5))
    assert grey == pytest.approx({"luma": 0.5, "luma_std": 0.0, "clip_hi": 0.0, "clip_lo": 0.0, "rg": 0.0,
                                  "yb": 0.0, "rg_std": 0.0, "yb_std": 0.0, "chroma": 0.0}, abs=1e-5)
    orange = _colour_stats(torch.tensor([0.8, 0.4, 0.2]).view(3, 1, 1).expand(3, 8, 8))
    # luma .299*.8 + .587*.4 + .114*.2 = .4968; rg = .8 - .4; yb = (.8 + .4) / 2 - .2; chroma = .8 - .2
    assert orange == pytest.approx({"luma": 0.4968, "luma_std": 0.0, "clip_hi": 0.0, "clip_lo": 0.0, "rg": 0.4,
                                    "yb": 0.4, "rg_std": 0.0, "yb_std": 0.0, "chroma": 0.6}, abs=1e-5)


def test_colour_stats_count_clipped_pixels():
    x = torch.zeros(3, 8, 8)
    x[:, :4] = 1.0                           # top half white, bottom half black
    x[0, 4:6] = 0.98                         # half of the black rows get a red channel half-way into the knee
    s = _colour_stats(x)
    # clipped high: 32 white pixels count 1, 16 red ones 0.5 -> 40 / 64; dark: the 16 pure-black pixels
    # count 1, the red ones have luma .299 * .98 above the knee -> 16 / 64
    assert s["clip_hi"] == pytest.approx(40 / 64, abs=1e-5)
    assert s["clip_lo"] == pytest.approx(16 / 64, abs=1e-5)


def test_colour_stats_follow_the_colour_ladder():
    """Desaturation lowers the opponent spreads and chroma, saturation raises them, a tint moves
    the opponent means away from the image's own: the colour ladder is visible to the head."""
    from vqametric.train.fast.distortions import colour
    img = (torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1)) * 200 + 20).to(torch.uint8)
    stats = {}
    for mode in ("desaturate", "saturate", "tint"):
        for level in (0, 2, 5):
            out = img if level == 0 else colour(img, level, seed=3, mode=mode)
            stats[mode, level] = _colour_stats(out[0].permute(2, 0, 1).float() / 255)
    for key in ("rg_std", "yb_std", "chroma"):
        assert stats["desaturate", 0][key] > stats["desaturate", 2][key] > stats["desaturate", 5][key]
        assert stats["saturate", 0][key] < stats["saturate", 2][key] < stats["saturate", 5][key]
    cast = {lv: np.hypot(stats["tint", lv]["rg"] - stats["tint", 0]["rg"], stats["tint", lv]["yb"] - stats["tint", 0]["yb"])
            for lv in (2, 5)}
    assert 0.02 < cast[2] < cast[5]


@pytest.mark.parametrize("arch,extra", [(2, 0), (3, 9), (4, 9 + 3), (5, 9 + 1)])
def test_each_architecture_has_its_statistics(arch, extra):
    """2: MSCN and temporal statistics only; 3 adds 9 colour statistics; 4 adds blockiness (2)
    and the share of still steps (1); 5 adds the still share alone. Files of every supported
    generation still run."""
    base = FastHead(HeadConfig(frames_per_segment=2, fragment_size=56, global_size=32, width=4, arch=2))
    head = FastHead(HeadConfig(frames_per_segment=2, fragment_size=56, global_size=32, width=4, arch=arch))
    assert head.stats_norm.num_features == base.stats_norm.num_features + extra
    frag, glob = head.eval().example_inputs(2)
    assert head(frag, glob)["score"].shape == (2,)


def _raw_statistics(head: FastHead, frag: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
    """The statistics vector a head feeds its ``stats_norm`` (before normalisation)."""
    seen = []
    hook = head.stats_norm.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0]))
    with torch.no_grad():
        head(frag, glob)
    hook.remove()
    return seen[0]


def test_architecture_5_is_architecture_4_without_blockiness():
    """Same input: arch 5's statistics are arch 4's with the two blockiness columns (after the
    MSCN, temporal and colour ones) left out, and arch 3's plus the still share at the end."""
    cfg = dict(frames_per_segment=4, fragment_size=112, global_size=64, width=4)
    heads = {a: FastHead(HeadConfig(arch=a, **cfg)).eval() for a in (3, 4, 5)}
    frag, glob = heads[4].example_inputs(2)
    frag[:, 2] = frag[:, 1]                                              # a held frame: still share > 0
    glob[:, 2] = glob[:, 1]
    raw = {a: _raw_statistics(h, frag, glob) for a, h in heads.items()}
    n3 = raw[3].shape[1]
    assert torch.equal(raw[5], torch.cat((raw[4][:, :n3], raw[4][:, n3 + 2:]), 1))
    assert torch.equal(raw[5][:, :n3], raw[3]) and (raw[5][:, n3:] > 0).all()


@pytest.mark.parametrize("arch", [4, 5])
def test_architectures_4_and_5_export_to_onnx_and_match_torch(tmp_path, arch):
    from vqametric.backends.onnx_runtime import export_onnx

    torch.manual_seed(0)
    head = FastHead(HeadConfig(frames_per_segment=4, fragment_size=112, global_size=64, width=8,
                               spatial_stride=2, arch=arch)).eval()
    path = str(tmp_path / f"arch{arch}.onnx")
    export_onnx(head, path, head.sampling_config(), name=f"arch{arch}")
    frag, glob = head.example_inputs(3)
    got = OnnxHead(path)(frag, glob)
    with torch.no_grad():
        want = head(frag, glob)
    for k in ("score", "attribution", "severity"):
        assert (got[k] - want[k]).abs().max().item() < 1e-4, k


def _blockiness(luma: torch.Tensor) -> list[float]:
    """Blockiness ``[horizontal, vertical]`` of one fragment whose luma is ``luma`` ``(224, 224)``."""
    head = FastHead(HeadConfig(frames_per_segment=1, width=4))
    return head._blockiness(head._patches(_normalised(luma.expand(3, -1, -1))[None]))[0].tolist()


def test_blockiness_worked_by_hand():
    """Columns constant in blocks of 8, stepping by 0.1 at every 8th boundary: per 32-px patch the
    24 boundaries measured hold 3 steps at one phase, so the phase means are 0.1 and 0 (x7):
    log((0.1 + 1e-3) / (0.1 / 8 + 1e-3)) = log(101 / 13.5); rows are constant: log(1) = 0."""
    cols = (torch.arange(224) // 8 % 2).float() * 0.1 + 0.4
    h, v = _blockiness(cols.expand(224, -1))
    assert h == pytest.approx(math.log(0.101 / 0.0135), abs=1e-3)
    assert v == pytest.approx(0.0, abs=1e-6)
    hv, vv = _blockiness(cols.expand(224, -1).T.contiguous())        # the same grid turned: rows block
    assert (hv, vv) == pytest.approx((0.0, h), abs=1e-3)


def test_blockiness_needs_no_grid_alignment_and_ignores_smooth_and_noisy_content():
    g = torch.Generator().manual_seed(0)
    blocks = torch.rand(28, 28, generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1) * 0.5 + 0.25
    aligned = _blockiness(blocks)
    shifted = _blockiness(torch.roll(blocks, (3, 5), (0, 1)))          # the grid at another phase
    assert min(aligned) > 1.0 and shifted == pytest.approx(aligned, abs=0.15)
    noise = _blockiness(0.5 + 0.1 * torch.randn(224, 224, generator=g))
    ramp = _blockiness(torch.linspace(0.2, 0.8, 224).expand(224, -1))
    assert max(map(abs, noise)) < 0.15 and max(map(abs, ramp)) < 0.01


def test_still_share_counts_repeated_frames():
    """Share of still steps (the 8th temporal statistic): none in a steady pan, 1 of 3 steps when
    one frame is held twice, 2 of 3 when one is held three times."""
    share = [_temporal_stats(pos)["still"] for pos in ([0, 1, 2, 3], [0, 1, 1, 2], [0, 0, 0, 1])]
    assert share == pytest.approx([0.0, 1 / 3, 2 / 3], abs=1e-3)


def test_mscn_statistics_tell_noise_from_smooth_texture():
    head = FastHead(HeadConfig(frames_per_segment=1, fragment_size=56, global_size=32, width=4))
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 1, 64, 64, generator=g)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, 1, 2)
    flat = torch.full((1, 1, 32, 32), 0.5)
    n, s, f = head._mscn_stats(noise), head._mscn_stats(smooth), head._mscn_stats(flat)
    assert abs(n[0, 3].item()) < 0.15                           # neighbours of white noise are uncorrelated
    assert s[0, 3].item() > n[0, 3].item() + 0.2 and s[0, 4].item() > n[0, 4].item() + 0.2
    assert f[0, 0].item() == pytest.approx(0.0, abs=1e-6)       # a flat patch has no MSCN energy
    assert n[0, 6].item() > s[0, 6].item()                      # noise has more local contrast than its blur


def _smooth_patches(n: int = 6, p: int = 32) -> torch.Tensor:
    """Luma patches of a gentle ramp around a bright level: local variance far below float32's
    resolution of ``E[y^2]``, the case where the variance used to cancel catastrophically."""
    yy, xx = torch.meshgrid(torch.arange(p, dtype=torch.float64), torch.arange(p, dtype=torch.float64), indexing="ij")
    levels = torch.linspace(0.55, 0.95, n, dtype=torch.float64).view(n, 1, 1, 1)
    return levels + 2e-4 * (xx + 0.5 * yy).view(1, 1, p, p) / p


def test_mscn_statistics_are_stable_in_float32_on_smooth_patches():
    """Float32 and float64 agree on smooth patches (uncentred, the log local contrast of such a
    patch moved by more than 0.1 between the two)."""
    head = FastHead(HeadConfig(frames_per_segment=1, fragment_size=224, global_size=32, width=4))
    y = _smooth_patches()
    want = head.double()._mscn_stats(y)
    got = head.float()._mscn_stats(y.float())
    assert (got.double() - want).abs().max().item() < 1e-3
    assert want[:, 6].min().item() > np.log(2e-4) - 0.01     # sqrt(var + 1e-8) >= 1e-4: the floor is there


def test_onnx_keeps_the_variance_floor_on_flat_content(tmp_path):
    """The ONNX exporter's optimiser removes an Add of a constant as small as 1e-8; the head is
    written so that the floor survives export. Flat fragments make the floor decide the log
    local contrast, and a small running variance of the statistics' BatchNorm magnifies any
    difference into the score."""
    from vqametric.backends.onnx_runtime import export_onnx

    torch.manual_seed(0)
    head = FastHead(HeadConfig(frames_per_segment=2, fragment_size=112, global_size=64, width=4)).eval()
    with torch.no_grad():
        head.stats_norm.running_var.fill_(1e-4)
    path = export_onnx(head, tmp_path / "flat.onnx")
    frag, glob = head.example_inputs(3)
    frag = frag.mul(0.0).add(torch.tensor([0.1, 0.2, 0.3]).view(1, 1, 3, 1, 1))   # flat, different levels
    with torch.no_grad():
        want = head(frag, glob)
    got = OnnxHead(path)(frag, glob)
    assert (got["attribution"] - want["attribution"]).abs().max().item() < 1e-3
    assert (got["score"] - want["score"]).abs().max().item() < 1e-4
