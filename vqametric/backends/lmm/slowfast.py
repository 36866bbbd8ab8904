"""SlowFast-R50 motion features, written from the SlowFast paper's architecture.

The VQAThinker release turns the clip into one "Motion Feature" token: the 12 normalised 560x560
frames go through the stem and the four residual stages of a Kinetics SlowFast-R50 (8x8) with its
classification head removed, and the two pathways are pooled into a 2048 + 256 = 2304-d vector
that an MLP projects into the language model.

Module and parameter names follow the checkpoint (``feature_extraction.<stage>.multipathway_blocks
.<pathway>...``, ``...multipathway_fusion.conv_fast_to_slow...``), so the released weights load
unchanged. The forward pass reproduces the release's feature extraction:

1. pathways: fast = all ``T`` frames, slow = ``T // alpha`` frames at ``linspace(0, T - 1)``
   (truncated to integers), both ``(B, 3, t, H, W)``;
2. stem + res2..res5 with fast-to-slow lateral fusions after the stem and res2..res4;
3. both pathways repeated ``repeat`` times along time, average-pooled with stride 1 over
   ``(8, 7, 7)`` (slow) and ``(32, 7, 7)`` (fast) windows, then averaged to one vector each and
   concatenated (slow first).

Window sizes larger than a feature map (tiny test inputs) are clipped to the map; at 560px with
12 frames nothing is clipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SlowFastConfig:
    """Shape of a SlowFast-R(50) trunk. Defaults: the Kinetics SlowFast-R50 8x8 model."""

    width: int = 64                       # slow stem channels; stage outputs are 4w, 8w, 16w, 32w
    beta: int = 8                         # fast pathway has 1/beta of the slow channels
    fusion_ratio: int = 2                 # lateral conv output channels = ratio * fast channels
    fusion_kernel: int = 7                # temporal kernel of the lateral conv
    alpha: int = 4                        # frame-rate ratio (slow frames = T // alpha; lateral stride)
    depths: tuple[int, int, int, int] = (3, 4, 6, 3)
    repeat: int = 4                       # temporal repeat before pooling (release: 4)
    pool_slow: tuple[int, int, int] = (8, 7, 7)
    pool_fast: tuple[int, int, int] = (32, 7, 7)

    @property
    def slow_out(self) -> int:
        return self.width * 32

    @property
    def fast_out(self) -> int:
        return self.width * 32 // self.beta

    @property
    def feature_dim(self) -> int:
        return self.slow_out + self.fast_out


def _bn(c: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c, eps=1e-5, momentum=0.1)


class _Stem(nn.Module):
    def __init__(self, cin: int, cout: int, kt: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (kt, 7, 7), stride=(1, 2, 2), padding=(kt // 2, 3, 3), bias=False)
        self.norm = _bn(cout)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x):
        return self.pool(self.activation(self.norm(self.conv(x))))


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, inner: int, cout: int, kt: int, spatial_stride: int):
        super().__init__()
        self.conv_a = nn.Conv3d(cin, inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
        self.norm_a = _bn(inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                                padding=(0, 1, 1), bias=False)
        self.norm_b = _bn(inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(inner, cout, 1, bias=False)
        self.norm_c = _bn(cout)

    def forward(self, x):
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, inner: int, cout: int, kt: int, spatial_stride: int):
        super().__init__()
        if cin != cout or spatial_stride != 1:
            self.branch1_conv = nn.Conv3d(cin, cout, 1, stride=(1, spatial_stride, spatial_stride), bias=False)
            self.branch1_norm = _bn(cout)
        else:
            self.branch1_conv = None
            self.branch1_norm = None
        self.branch2 = _Bottleneck(cin, inner, cout, kt, spatial_stride)
        self.activation = nn.ReLU()

    def forward(self, x):
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class _ResStage(nn.Module):
    def __init__(self, depth: int, cin: int, inner: int, cout: int, kts: tuple[int, ...], spatial_stride: int):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            _ResBlock(cin if i == 0 else cout, inner, cout, kts[i % len(kts)], spatial_stride if i == 0 else 1)
            for i in range(depth))

    def forward(self, x):
        for block in self.res_blocks:
            x = block(x)
        return x


class _FastToSlow(nn.Module):
    def __init__(self, fast_channels: int, ratio: int, kernel: int, alpha: int):
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, fast_channels * ratio, (kernel, 1, 1),
                                           stride=(alpha, 1, 1), padding=(kernel // 2, 0, 0), bias=False)
        self.norm = _bn(fast_channels * ratio)
        self.activation = nn.ReLU()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = x
        lateral = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        if lateral.shape[2] != slow.shape[2]:
            raise ValueError(f"SlowFast: the fast pathway gives {lateral.shape[2]} lateral frames for "
                             f"{slow.shape[2]} slow frames; use a frame count that is a multiple of alpha")
        return [torch.cat([slow, lateral], 1), fast]


class _TwoPathways(nn.Module):
    def __init__(self, slow: nn.Module, fast: nn.Module, fusion: nn.Module | None):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow, fast])
        self.multipathway_fusion = fusion if fusion is not None else nn.Identity()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [self.multipathway_blocks[0](x[0]), self.multipathway_blocks[1](x[1])]
        return self.multipathway_fusion(out)


_SLOW_KT = ((1,), (1,), (3,), (3,))   # temporal kernel of conv_a per stage (slow); fast uses 3 throughout


class SlowFastMotion(nn.Module):
    """SlowFast trunk + the release's pooling: ``(B, 3, T, H, W)`` normalised frames -> ``(B, 2304)``."""

    def __init__(self, config: SlowFastConfig = SlowFastConfig()):
        super().__init__()
        c = config
        self.config = c
        w, b, r = c.width, c.beta, c.fusion_ratio
        stages = [_TwoPathways(_Stem(3, w, 1), _Stem(3, w // b, 5), _FastToSlow(w // b, r, c.fusion_kernel, c.alpha))]
        dim_in, dim_out = w, 4 * w
        for i, depth in enumerate(c.depths):
            stride = 1 if i == 0 else 2
            slow = _ResStage(depth, dim_in + dim_in * r // b, dim_out // 4, dim_out, _SLOW_KT[i], stride)
            fast = _ResStage(depth, dim_in // b, dim_out // 4 // b, dim_out // b, (3,), stride)
            fusion = _FastToSlow(dim_out // b, r, c.fusion_kernel, c.alpha) if i < 3 else None
            stages.append(_TwoPathways(slow, fast, fusion))
            dim_in, dim_out = dim_out, dim_out * 2
        self.feature_extraction = nn.Sequential(*stages)

    @staticmethod
    def pathways(frames: torch.Tensor, alpha: int = 4) -> list[torch.Tensor]:
        """``(B, 3, T, H, W)`` -> ``[slow, fast]``: slow keeps ``T // alpha`` frames at
        ``linspace(0, T - 1)`` truncated to integers."""
        t = frames.shape[2]
        if t < alpha:
            raise ValueError(f"SlowFast needs at least {alpha} frames, got {t}")
        idx = torch.linspace(0, t - 1, t // alpha).long().to(frames.device)
        return [frames.index_select(2, idx), frames]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        c = self.config
        slow, fast = self.feature_extraction(self.pathways(frames, c.alpha))
        feats = []
        for x, window in ((slow, c.pool_slow), (fast, c.pool_fast)):
            x = x.repeat_interleave(c.repeat, dim=2)
            k = tuple(min(kk, s) for kk, s in zip(window, x.shape[2:]))
            x = F.avg_pool3d(x, k, stride=1)
            feats.append(F.adaptive_avg_pool3d(x, 1).flatten(1))
        return torch.cat(feats, 1)


def config_from_state_dict(shapes: dict[str, list[int]], prefix: str = "") -> SlowFastConfig:
    """Trunk shape from checkpoint tensor shapes (``key -> shape``; keys after ``prefix``)."""
    def shape(key):
        return shapes[prefix + key]

    slow_stem = shape("feature_extraction.0.multipathway_blocks.0.conv.weight")
    fast_stem = shape("feature_extraction.0.multipathway_blocks.1.conv.weight")
    lateral = shape("feature_extraction.0.multipathway_fusion.conv_fast_to_slow.weight")
    width, fast_width = slow_stem[0], fast_stem[0]
    depths = []
    for stage in range(1, 5):
        head = f"{prefix}feature_extraction.{stage}.multipathway_blocks.0.res_blocks."
        blocks = {int(k[len(head):].split(".")[0]) for k in shapes if k.startswith(head)}
        depths.append(max(blocks) + 1 if blocks else 0)
    return SlowFastConfig(width=width, beta=width // fast_width, fusion_ratio=lateral[0] // lateral[1],
                          fusion_kernel=lateral[2], depths=tuple(depths))


__all__ = ["SlowFastConfig", "SlowFastMotion", "config_from_state_dict"]
