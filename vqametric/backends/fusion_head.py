"""Head architecture 6: a pretrained image backbone fused with the compact head's pathways.

Per segment (``N`` segments, ``K`` consecutive frames each) the head takes the same two views as
:class:`~vqametric.backends.head.FastHead`, with a larger global view:

* ``fragments`` ``(N, K, 3, F, F)``, normalised with the ImageNet mean/std;
* ``global_view`` ``(N, K, 3, S, S)``, ``S = HeadConfig.global_size`` (224 for the shipped model).

Three parts read them:

* ``backbone``: ImageNet-trained EfficientNet-Lite0 (frozen) on the global view of the segment's
  first frame; the mean and spread of its seven stage outputs (1568 values) describe content,
  sharpness, noise, exposure and colour as a photo model sees them;
* ``base``: the compact head of architecture 3 (fragments, MSCN, exposure and colour statistics,
  the temporal pathway) on the same views, the global view halved by 2x2 averaging;
* readouts: a *spatial* MLP over the backbone and the base's spatial features gives a logit
  ``z_s``; a *temporal* MLP over the base's temporal features gives a penalty ``p >= 0``; an
  attribution MLP reads both.

``score = 1 + 4 * sigmoid(z_s - gate * p)`` where ``gate = clamp(motion / MOTION_GATE, 0, 1)``
and ``motion`` is the mean absolute luma change between consecutive frames (luma in [0, 1] at
half the global size). Frames that do not change at all (a still image, a one-frame clip, a
segment inside a freeze) have ``gate = 0``: the temporal pathway does not vote and the segment is
judged on its spatial quality alone. Whether a still segment is a *freeze* depends on the rest of
the clip, so that is decided when the segments are pooled (:mod:`vqametric.backends.pooling`).

Outputs per segment: ``score`` ``(N,)`` in [1, 5]; ``attribution`` ``(N, 1 + len(DISTORTIONS_V6))``
logits; ``severity`` ``(N, len(DISTORTIONS_V6))`` in [0, 1]; ``spatial_score`` ``(N,)`` in
[1, 5] (``1 + 4 * sigmoid(z_s)``); ``motion`` ``(N,)`` >= 0; ``motion_steps`` ``(N, K - 1)``, the
luma change of each step (pooling finds holds in it).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sampling.plan import IMAGENET_MEAN, IMAGENET_STD
from .efficientnet_lite import FEATURES as BACKBONE_FEATURES
from .efficientnet_lite import EfficientNetLite
from .compact_head import COLOUR_STATS, DISTORTIONS, NSS_FEATURES, TEMPORAL_STATS, FastHead, HeadConfig

DISTORTIONS_V6 = DISTORTIONS + ("black", "freeze")
ATTRIBUTION_CLASSES_V6 = ("none",) + DISTORTIONS_V6
FUSION_ARCH = 6
MOTION_GATE = 2e-3      # mean absolute luma step at which the temporal pathway votes fully
OUTPUT_NAMES_V6 = ("score", "attribution", "severity", "spatial_score", "motion", "motion_steps")


def _standardiser(n: int) -> nn.Module:
    """``(x - mean) / std`` with buffers set from training features (see ``set_standardisers``)."""
    m = nn.BatchNorm1d(n, affine=False, eps=1e-6, momentum=None)
    m.eval()
    return m


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.Hardswish(), nn.Dropout(0.1), nn.Linear(hidden, cout))


class FusionHead(nn.Module):
    """Head architecture 6; see the module docstring for shapes."""

    output_names = OUTPUT_NAMES_V6
    distortions = DISTORTIONS_V6
    attribution_classes = ATTRIBUTION_CLASSES_V6

    def __init__(self, config: HeadConfig = HeadConfig(arch=FUSION_ARCH, global_size=224, spatial_stride=2)):
        super().__init__()
        if config.arch != FUSION_ARCH:
            raise ValueError(f"FusionHead is head architecture {FUSION_ARCH}, got {config.arch}")
        if config.global_size % 2:
            raise ValueError("architecture 6 halves the global view: global_size must be even")
        self.config = config
        base_cfg = HeadConfig(frames_per_segment=config.frames_per_segment, num_segments=config.num_segments,
                              fragment_size=config.fragment_size, global_size=config.global_size // 2,
                              width=config.width, spatial_stride=config.spatial_stride, arch=3)
        self.base = FastHead(base_cfg)
        self.backbone = EfficientNetLite()
        w = config.width
        self.n_spatial = 2 * 8 * w + 8 * w + NSS_FEATURES + COLOUR_STATS
        self.n_temporal = 4 * w + TEMPORAL_STATS + 4 * w + 1
        self.backbone_norm = _standardiser(BACKBONE_FEATURES)
        self.spatial_norm = _standardiser(self.n_spatial)
        self.temporal_norm = _standardiser(self.n_temporal)
        self.spatial_out = _mlp(BACKBONE_FEATURES + self.n_spatial, 128, 1)
        self.temporal_out = _mlp(self.n_temporal, 64, 1)
        self.attribution_out = _mlp(BACKBONE_FEATURES + self.n_spatial + self.n_temporal + 1, 128,
                                    len(ATTRIBUTION_CLASSES_V6) + len(DISTORTIONS_V6))
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # ImageNet-normalised x -> 2 * rgb - 1, the backbone's input range
        self.register_buffer("pm1_w", 2.0 * std, persistent=False)
        self.register_buffer("pm1_b", 2.0 * mean - 1.0, persistent=False)

    def train(self, mode: bool = True) -> "FusionHead":
        """Only the readouts train: the backbone, the base head and the standardisers stay in
        eval mode (frozen batch-norm statistics)."""
        super().train(mode)
        for m in (self.base, self.backbone, self.backbone_norm, self.spatial_norm, self.temporal_norm):
            m.eval()
        return self

    # ------------------------------------------------------------------------------------------
    def motion_steps(self, global_view: torch.Tensor) -> torch.Tensor:
        """``(N, K, 3, S, S)`` normalised -> ``(N, max(K - 1, 1))`` mean absolute luma change of each
        frame step (luma in [0, 1] at ``S / 2``); zeros for ``K = 1`` and for frames that do not change."""
        n, k = global_view.shape[:2]
        if k == 1:
            return global_view.new_zeros(n, 1)
        y = self.base._luma(global_view.flatten(0, 1))
        y = F.avg_pool2d(y, 2).view(n, k, -1)
        return (y[:, 1:] - y[:, :-1]).abs().mean(2)

    def motion(self, global_view: torch.Tensor) -> torch.Tensor:
        """``(N,)``: the mean of :meth:`motion_steps`."""
        return self.motion_steps(global_view).mean(1)

    def features(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frozen features per segment: ``backbone`` ``(N, 1568)``, ``spatial`` and ``temporal``
        (the base head's, raw), ``motion`` ``(N,)``, ``motion_steps`` ``(N, max(K - 1, 1))``. The
        readouts are trained on these."""
        n, k = global_view.shape[:2]
        small = F.avg_pool2d(global_view.flatten(0, 1), 2).view(n, k, 3, global_view.shape[-2] // 2, -1)
        b = self.base.features(fragments, small)
        stats = b["stats"]
        spatial = torch.cat((b["fragment"], b["global"], stats[:, :NSS_FEATURES],
                             stats[:, NSS_FEATURES + TEMPORAL_STATS:]), 1)
        steps = self.motion_steps(global_view)
        motion = steps.mean(1)
        temporal = torch.cat((b["temporal"], stats[:, NSS_FEATURES:NSS_FEATURES + TEMPORAL_STATS], b["hidden"],
                              torch.log(motion + 1e-4)[:, None]), 1)
        first = global_view[:, 0]
        backbone = self.backbone.stage_stats(first * self.pm1_w + self.pm1_b)
        return {"backbone": backbone, "spatial": spatial, "temporal": temporal, "motion": motion,
                "motion_steps": steps}

    def readout(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Frozen features (:meth:`features`) -> the outputs (module docstring)."""
        xb = self.backbone_norm(feats["backbone"])
        xs = self.spatial_norm(feats["spatial"])
        xt = self.temporal_norm(feats["temporal"])
        gate = (feats["motion"] / MOTION_GATE).clamp(0.0, 1.0)
        z_s = self.spatial_out(torch.cat((xb, xs), 1)).squeeze(1)
        p = F.softplus(self.temporal_out(xt).squeeze(1))
        a = self.attribution_out(torch.cat((xb, xs, xt * gate[:, None], gate[:, None]), 1))
        n_cls = len(ATTRIBUTION_CLASSES_V6)
        return {
            "score": 1.0 + 4.0 * torch.sigmoid(z_s - gate * p),
            "attribution": a[:, :n_cls],
            "severity": torch.sigmoid(a[:, n_cls:]),
            "spatial_score": 1.0 + 4.0 * torch.sigmoid(z_s),
            "motion": feats["motion"],
        }

    def forward(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(fragments, global_view)
        return {**self.readout(feats), "motion_steps": feats["motion_steps"]}

    @torch.no_grad()
    def set_standardisers(self, feats: dict[str, torch.Tensor]) -> None:
        """Set the feature standardisers from training features (:meth:`features` of many rows)."""
        for key, m in (("backbone", self.backbone_norm), ("spatial", self.spatial_norm),
                       ("temporal", self.temporal_norm)):
            x = feats[key].double()
            m.running_mean.copy_(x.mean(0).float())
            m.running_var.copy_(x.var(0).clamp_min(1e-8).float())

    def example_inputs(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        return self.config.example_inputs(n)

    def sampling_config(self, **overrides: Any):
        return self.config.sampling_config(**overrides)
