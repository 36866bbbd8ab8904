"""The compact fast scoring head (PyTorch), and its safetensors weights format.

Per segment the head sees ``K = frames_per_segment`` consecutive frames as two views:

* ``fragments`` ``(N, K, 3, F, F)``: FAST-VQA-style native-resolution patches (compression,
  noise, blur, scaling artefacts survive because nothing is resized);
* ``global_view`` ``(N, K, 3, S, S)``: the whole frame, small (exposure, colour, composition),
  whose frame-to-frame differences carry the temporal signal (stutter, freezes, flicker, shake).

``N`` counts segments (of one or many clips). Outputs per segment:

* ``score`` ``(N,)`` float on the 1-5 MOS scale (``1 + 4 * sigmoid``), higher is better;
* ``attribution`` ``(N, 1 + len(DISTORTIONS))`` logits: "none" or the dominant distortion;
* ``severity`` ``(N, len(DISTORTIONS))`` in [0, 1], one per distortion.

Weights are stored as safetensors with the head and sampling configuration in the file's
metadata, so a weights file is self-describing.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import WeightsNotFound
from ..sampling.plan import SamplingConfig

DISTORTIONS = ("blur", "noise", "compression", "scaling", "exposure", "colour", "stutter", "flicker", "shake")
ATTRIBUTION_CLASSES = ("none",) + DISTORTIONS
FORMAT_KEY = "vqametric.head"


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of :class:`FastHead`. ``width`` scales every layer."""

    frames_per_segment: int = 2
    fragment_size: int = 224
    global_size: int = 128
    width: int = 24

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadConfig":
        return cls(**{k: int(v) for k, v in d.items() if k in cls.__dataclass_fields__})


def _conv_bn(cin: int, cout: int, stride: int, groups: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.Hardswish())


class _Block(nn.Module):
    """Depthwise-separable residual block (MobileNet-style)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = _conv_bn(cin, cin, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, k=1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.skip else y


def _backbone(w: int, stages: int) -> nn.Sequential:
    layers: list[nn.Module] = [_conv_bn(3, w, 2)]
    c = w
    for i in range(stages):
        cout = w * 2 ** min(i + 1, 3)
        layers += [_Block(c, cout, 2), _Block(cout, cout, 1)]
        c = cout
    return nn.Sequential(*layers)


class FastHead(nn.Module):
    """Compact two-view quality head; see the module docstring for shapes."""

    def __init__(self, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.config = config
        w = config.width
        # fragments 224 -> /2 stem -> /16 by 4 stages = 7x7: one feature per 32x32 fragment patch
        self.fragment_net = _backbone(w, 4)
        self.global_net = _backbone(w, 3)
        self.motion_net = nn.Sequential(_conv_bn(3, w, 2), _Block(w, 2 * w, 2), _Block(2 * w, 2 * w, 2))
        cf, cg, cm = w * 8, w * 8, 2 * w
        fused = 2 * cf + cg + cm + 4
        self.mlp = nn.Sequential(nn.Linear(fused, 4 * w), nn.Hardswish(), nn.Linear(4 * w, 4 * w), nn.Hardswish())
        self.score_out = nn.Linear(4 * w, 1)
        self.attribution_out = nn.Linear(4 * w, len(ATTRIBUTION_CLASSES))
        self.severity_out = nn.Linear(4 * w, len(DISTORTIONS))

    def forward(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        n, k = fragments.shape[0], fragments.shape[1]
        f = self.fragment_net(fragments.flatten(0, 1))                      # (N*K, C, 7, 7)
        f = torch.cat((f.mean((2, 3)), f.flatten(2).std(2)), 1)             # mean and spread over patches
        f = f.view(n, k, -1).mean(1)
        g_in = global_view.flatten(0, 1)
        g = self.global_net(g_in).mean((2, 3)).view(n, k, -1).mean(1)
        gv = global_view
        if k > 1:
            diff = gv[:, 1:] - gv[:, :-1]                                   # (N, K-1, 3, S, S)
        else:
            diff = torch.zeros_like(gv)
        m = self.motion_net(diff.flatten(0, 1)).mean((2, 3)).view(n, diff.shape[1], -1).mean(1)
        mag = diff.abs().mean((2, 3, 4))                                    # (N, K-1) per-step change
        luma = gv.mean((2, 3, 4))                                           # (N, K) brightness per frame
        stats = torch.stack((mag.mean(1), mag.amin(1), mag.amax(1), luma.std(1) if k > 1 else luma[:, 0] * 0), 1)
        h = self.mlp(torch.cat((f, g, m, stats), 1))
        return {
            "score": 1.0 + 4.0 * torch.sigmoid(self.score_out(h).squeeze(1)),
            "attribution": self.attribution_out(h),
            "severity": torch.sigmoid(self.severity_out(h)),
        }

    def example_inputs(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return (torch.randn(n, c.frames_per_segment, 3, c.fragment_size, c.fragment_size),
                torch.randn(n, c.frames_per_segment, 3, c.global_size, c.global_size))

    def sampling_config(self, **overrides: Any) -> SamplingConfig:
        """The :class:`SamplingConfig` whose views match this head's input sizes."""
        c = self.config
        grid = 7
        return SamplingConfig(frames_per_segment=c.frames_per_segment, fragment_grid=grid,
                              fragment_patch=c.fragment_size // grid, global_size=c.global_size, **overrides)


def save_head(head: FastHead, path: str | os.PathLike, sampling: SamplingConfig | None = None,
              name: str = "custom-head", version: str = "0") -> None:
    """Write ``head`` to a safetensors file with its configuration in the metadata."""
    from safetensors.torch import save_file

    sampling = sampling or head.sampling_config()
    meta = {FORMAT_KEY: json.dumps({"head": asdict(head.config), "sampling": sampling.to_dict(),
                                    "name": name, "version": version})}
    state = {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
    save_file(state, os.fspath(path), metadata=meta)


def read_head_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``{"head", "sampling", "name", "version"}`` metadata of a head weights file."""
    path = os.fspath(path)
    _require_file(path)
    if path.endswith(".onnx"):
        import onnx

        model = onnx.load(path, load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
    else:
        from safetensors import safe_open

        try:
            with safe_open(path, "pt") as f:
                props = f.metadata() or {}
        except Exception as e:
            raise WeightsNotFound(f"{path} is not a readable safetensors file ({e}); weights load only from "
                                  "safetensors or ONNX, never from pickle") from e
    if FORMAT_KEY not in props:
        raise WeightsNotFound(f"{path} carries no vqametric head metadata; save heads with "
                              "vqametric.backends.save_head or export_onnx")
    return json.loads(props[FORMAT_KEY])


def load_head(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[FastHead, dict[str, Any]]:
    """Load a :class:`FastHead` from safetensors; returns ``(head in eval mode, metadata)``."""
    from safetensors.torch import load_file

    meta = read_head_metadata(path)
    head = FastHead(HeadConfig.from_dict(meta["head"]))
    state = load_file(os.fspath(path), device=str(map_location))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        raise WeightsNotFound(f"{path} does not match the head architecture in its metadata ({len(diff)} "
                              f"tensor(s) differ, e.g. {diff[:2]}); re-export it with save_head")
    head.load_state_dict(state)
    return head.to(map_location).eval(), meta


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise WeightsNotFound(f"weights file {path!r} does not exist; pass the path of a .onnx or "
                              ".safetensors head (create one with vqametric.backends.save_head or export_onnx)")
    if path.endswith((".pt", ".pth", ".bin", ".ckpt", ".pkl")):
        raise WeightsNotFound(f"{path!r} is a pickle checkpoint; vqametric loads only safetensors or ONNX. "
                              "Convert it: torch.load it yourself if you trust it, then save_head(...)")
