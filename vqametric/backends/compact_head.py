"""The compact fast scoring head (PyTorch), head architectures 2-5: :class:`HeadConfig` and :class:`FastHead`.

Per segment the head sees ``K = frames_per_segment`` consecutive frames as two views:

* ``fragments`` ``(N, K, 3, F, F)``: FAST-VQA-style native-resolution patches (compression,
  noise, blur, scaling artefacts survive because nothing is resized);
* ``global_view`` ``(N, K, 3, S, S)``: the whole frame, small (exposure, colour, composition).

Three pathways read them:

* spatial: two small CNNs over the fragments and the global view of every ``spatial_stride``-th
  frame of the segment, plus natural-scene statistics of the fragments (MSCN coefficients, as
  in BRISQUE, at two scales), from architecture 3 on exposure and colour statistics of the
  global view (brightness, contrast, clipped highlights and shadows, opponent-colour means and
  spreads, chroma), and in architecture 4 the blockiness of the fragment patches;
* temporal: an early-fusion CNN over the luma of all ``K`` frames and their ``K - 1`` differences
  (it can see a motion stop, jump or reverse within the segment), plus scale-free statistics of the
  frame-to-frame change (relative step sizes, direction agreement of consecutive differences,
  brightness steps; in architectures 4 and 5 the share of still steps) for stutter, freezes,
  dropped frames, flicker and shake.

``N`` counts segments (of one or many clips). Outputs per segment:

* ``score`` ``(N,)`` float on the 1-5 MOS scale (``1 + 4 * sigmoid``), higher is better;
* ``attribution`` ``(N, 1 + len(DISTORTIONS))`` logits: "none" or the dominant distortion;
* ``severity`` ``(N, len(DISTORTIONS))`` in [0, 1], one per distortion.

Inputs are normalised with the ImageNet mean/std (the sampling default); the statistics undo that
normalisation to work on luma in [0, 1]. Building, saving and loading heads of every architecture:
:mod:`vqametric.backends.head`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WeightsNotFound
from ..sampling.plan import IMAGENET_MEAN, IMAGENET_STD, SamplingConfig

DISTORTIONS = ("blur", "noise", "compression", "scaling", "exposure", "colour", "stutter", "flicker", "shake")
ATTRIBUTION_CLASSES = ("none",) + DISTORTIONS
ARCH = 3          # architecture generation of new heads unless asked (HeadConfig.arch)
SUPPORTED_ARCHS = (2, 3, 4, 5, 6)   # 2: no colour statistics; 4 adds blockiness and still steps; 5 still steps only;
                                 # 6: pretrained backbone fused with architecture 3 (backends/fusion_head.py)
BLOCKINESS_ARCHS = (4,)          # architectures with the blockiness statistic
STILL_ARCHS = (4, 5)             # architectures with the share of still steps
FRAGMENT_GRID = 7


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of :class:`FastHead`. ``width`` scales every layer; ``spatial_stride``: the
    spatial CNNs see frames ``0, s, 2s, ...`` of each segment (the temporal pathway sees all)."""

    frames_per_segment: int = 4
    num_segments: int = 4
    fragment_size: int = 224
    global_size: int = 128
    width: int = 24
    spatial_stride: int = 2
    arch: int = ARCH

    def __post_init__(self) -> None:
        if self.arch not in SUPPORTED_ARCHS:
            raise WeightsNotFound(f"this head was built with head architecture {self.arch}; this vqametric "
                                  f"runs architectures {SUPPORTED_ARCHS}. Retrain it (docs/training-head.md) or use the "
                                  "vqametric version it was trained with")
        if min(self.frames_per_segment, self.num_segments, self.width, self.spatial_stride) < 1:
            raise ValueError("frames_per_segment, num_segments, width and spatial_stride must be at least 1")
        if self.fragment_size % FRAGMENT_GRID or self.fragment_size < 8 * FRAGMENT_GRID or self.global_size < 16:
            raise ValueError(f"fragment_size must be a multiple of {FRAGMENT_GRID} of at least "
                             f"{8 * FRAGMENT_GRID}, and global_size at least 16")

    def example_inputs(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Random ``(fragments (n, K, 3, F, F), global_view (n, K, 3, S, S))`` of this head's sizes."""
        return (torch.randn(n, self.frames_per_segment, 3, self.fragment_size, self.fragment_size),
                torch.randn(n, self.frames_per_segment, 3, self.global_size, self.global_size))

    def sampling_config(self, **overrides: Any) -> SamplingConfig:
        """The :class:`SamplingConfig` whose views match this head's input sizes."""
        kw = dict(num_segments=self.num_segments, frames_per_segment=self.frames_per_segment,
                  fragment_grid=FRAGMENT_GRID, fragment_patch=self.fragment_size // FRAGMENT_GRID,
                  global_size=self.global_size)
        kw.update(overrides)
        return SamplingConfig(**kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadConfig":
        d = {k: int(v) for k, v in d.items() if k in cls.__dataclass_fields__}
        d.setdefault("arch", 1)            # files written before the field existed
        return cls(**d)


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


def _backbone(w: int, stages: int, cin: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = [_conv_bn(cin, w, 2)]
    c = w
    for i in range(stages):
        cout = w * 2 ** min(i + 1, 3)
        layers += [_Block(c, cout, 2), _Block(cout, cout, 1)]
        c = cout
    return nn.Sequential(*layers)


def _gaussian_window(size: int = 7, sigma: float = 7 / 6) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


NSS_FEATURES = 2 * 7
TEMPORAL_STATS = 7
COLOUR_STATS = 9
BLOCKINESS_STATS = 2   # horizontal and vertical blockiness (BLOCKINESS_ARCHS)
STILL_STATS = 1        # share of still steps (STILL_ARCHS)
BLOCK = 8          # period of the blockiness statistic (JPEG, MPEG-2 and most H.264 transforms)
STILL_REL = 0.25   # a frame step below this share of the segment's mean step counts (linearly) as still
CLIP_KNEE = 0.04   # a channel within this of 0 or 1 counts (linearly) as clipped


class FastHead(nn.Module):
    """Compact spatial + temporal quality head; see the module docstring for shapes."""

    def __init__(self, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.config = config
        w = config.width
        k = config.frames_per_segment
        # fragments 224 -> /2 stem -> /16 by 4 stages = 7x7: one feature per 32x32 fragment patch
        self.fragment_net = _backbone(w, 4)
        self.global_net = _backbone(w, 3)
        # early fusion over K luma frames and K-1 differences at half the global size
        self.temporal_net = nn.Sequential(_conv_bn(2 * k - 1, 2 * w, 2), _Block(2 * w, 4 * w, 2),
                                          _Block(4 * w, 4 * w, 1), _Block(4 * w, 4 * w, 2))
        n_stats = (NSS_FEATURES + TEMPORAL_STATS + (COLOUR_STATS if config.arch >= 3 else 0)
                   + (BLOCKINESS_STATS if config.arch in BLOCKINESS_ARCHS else 0)
                   + (STILL_STATS if config.arch in STILL_ARCHS else 0))
        self.stats_norm = nn.BatchNorm1d(n_stats)
        cf, cg, ct = w * 8, w * 8, 4 * w
        fused = 2 * cf + cg + ct + n_stats
        self.mlp = nn.Sequential(nn.Linear(fused, 4 * w), nn.Hardswish(), nn.Linear(4 * w, 4 * w), nn.Hardswish())
        self.score_out = nn.Linear(4 * w, 1)
        self.attribution_out = nn.Linear(4 * w, len(ATTRIBUTION_CLASSES))
        self.severity_out = nn.Linear(4 * w, len(DISTORTIONS))
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        luma = torch.tensor([0.299, 0.587, 0.114])
        # luma in [0, 1] of a normalised image: sum_c luma_c * (x_c * std_c + mean_c)
        self.register_buffer("luma_w", (luma * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma_b", (luma * mean).sum().view(1, 1, 1, 1), persistent=False)
        self.register_buffer("window", _gaussian_window(), persistent=False)
        self.register_buffer("rgb_w", std.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_b", mean.view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------------------------------
    def _luma(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, 3, H, W)`` normalised -> ``(M, 1, H, W)`` luma in about [0, 1]."""
        return (x * self.luma_w).sum(1, keepdim=True) + self.luma_b

    def _mscn_stats(self, y: torch.Tensor) -> torch.Tensor:
        """BRISQUE-style statistics of ``(M, 1, P, P)`` luma patches -> ``(M, 7)``.

        Two numerical guards, neither of which changes the function in exact arithmetic:

        * each patch is centred on its mean first, so that the local variance
          ``E[y^2] - E[y]^2`` does not cancel catastrophically in float32 on smooth patches;
        * ``sqrt(var + 1e-8)`` is written ``1e-4 * sqrt(1e8 * var + 1)``: the ONNX exporter's
          optimiser drops an ``Add`` of a constant as small as 1e-8, which made ONNX Runtime
          compute ``sqrt(var)`` on flat patches.
        """
        y = y - y.mean((2, 3), keepdim=True)
        pad = self.window.shape[-1] // 2
        yp = F.pad(y, (pad, pad, pad, pad), mode="reflect")
        mu = F.conv2d(yp, self.window)
        var = F.conv2d(yp * yp, self.window) - mu * mu
        sigma = 1e-4 * torch.sqrt(var.clamp_min(0.0) * 1e8 + 1.0)             # sqrt(var + 1e-8)
        m = (y - mu) / (sigma + 1.0 / 255.0)
        m2 = (m * m).mean((1, 2, 3))
        feats = [
            m2,
            m.abs().mean((1, 2, 3)),
            torch.log((m ** 4).mean((1, 2, 3)) + 1e-6) - 2 * torch.log(m2 + 1e-6),   # log kurtosis
            (m[..., :, 1:] * m[..., :, :-1]).mean((1, 2, 3)),                      # horizontal neighbours
            (m[..., 1:, :] * m[..., :-1, :]).mean((1, 2, 3)),                      # vertical neighbours
            (m[..., 1:, 1:] * m[..., :-1, :-1]).mean((1, 2, 3)),                   # diagonal neighbours
            torch.log(sigma.mean((1, 2, 3)) + 1e-4),                               # local contrast
        ]
        return torch.stack(feats, 1)

    def _patches(self, frag: torch.Tensor) -> torch.Tensor:
        """Fragments ``(M, 3, F, F)`` -> luma patches ``(M * G * G, 1, P, P)``, ``G`` =
        :data:`FRAGMENT_GRID`, ``P = F / G``, patch-major per fragment."""
        m, f = frag.shape[0], frag.shape[-1]
        p = f // FRAGMENT_GRID
        y = self._luma(frag).view(m, FRAGMENT_GRID, p, FRAGMENT_GRID, p).permute(0, 1, 3, 2, 4)
        return y.reshape(m * FRAGMENT_GRID * FRAGMENT_GRID, 1, p, p)

    def _nss(self, y: torch.Tensor) -> torch.Tensor:
        """Luma patches of ``M`` fragments (:meth:`_patches`) -> ``(M, 14)``: MSCN statistics of
        each patch, averaged over the grid, at full and half resolution."""
        full = self._mscn_stats(y)
        half = self._mscn_stats(F.avg_pool2d(y, 2))
        return torch.cat((full, half), 1).view(-1, FRAGMENT_GRID * FRAGMENT_GRID, 2 * full.shape[1]).mean(1)

    def _blockiness(self, y: torch.Tensor) -> torch.Tensor:
        """Luma patches of ``M`` fragments (:meth:`_patches`) -> ``(M, 2)``: horizontal and
        vertical blockiness.

        In each patch the mean absolute luma step across column (row) boundaries is taken per
        boundary phase modulo :data:`BLOCK`; the statistic is ``log((max + e) / (mean + e))`` over
        the phases, ``e = 1e-3``, averaged over the patches. A block grid raises the steps at one
        phase, whatever the patch's offset in the frame (fragment patches sit anywhere), so it
        needs no alignment; smooth or noisy content gives about 0. Patches narrower than
        ``BLOCK + 1`` pixels give 0.
        """
        m, p = y.shape[0] // (FRAGMENT_GRID * FRAGMENT_GRID), y.shape[-1]
        periods = (p - 1) // BLOCK
        if periods < 1:
            return y.new_zeros(m, 2)
        n = periods * BLOCK
        dh = (y[..., :, 1:n + 1] - y[..., :, :n]).abs().reshape(y.shape[0], p, periods, BLOCK).mean((1, 2))
        dv = (y[..., 1:n + 1, :] - y[..., :n, :]).abs().reshape(y.shape[0], periods, BLOCK, p).mean((1, 3))
        feats = [torch.log((d.amax(1) + 1e-3) / (d.mean(1) + 1e-3)) for d in (dh, dv)]
        return torch.stack(feats, 1).view(m, FRAGMENT_GRID * FRAGMENT_GRID, 2).mean(1)

    def _colour_stats(self, x: torch.Tensor) -> torch.Tensor:
        """Exposure and colour statistics of ``(M, 3, S, S)`` normalised frames -> ``(M, 9)``.

        On RGB in [0, 1]: mean and spread of luma (exposure, contrast); the share of pixels with a
        channel clipped high and of pixels clipped dark (linear ramps over the last
        :data:`CLIP_KNEE`, so they stay differentiable); mean and spread of the opponent channels
        ``rg = R - G`` and ``yb = (R + G) / 2 - B`` (a cast moves the means, saturation scales the
        spreads, as in Hasler and Suesstrunk's colourfulness); mean chroma ``max - min`` over channels.
        """
        rgb = x * self.rgb_w + self.rgb_b
        y = self._luma(x)[:, 0]                                             # (M, S, S)
        hi = ((rgb.amax(1) - (1.0 - CLIP_KNEE)) / CLIP_KNEE).clamp(0.0, 1.0)
        lo = ((CLIP_KNEE - y) / CLIP_KNEE).clamp(0.0, 1.0)
        r, g, b = rgb.unbind(1)
        rg, yb = r - g, 0.5 * (r + g) - b
        chroma = rgb.amax(1) - rgb.amin(1)
        feats = [y.mean((1, 2)), y.flatten(1).std(1), hi.mean((1, 2)), lo.mean((1, 2)),
                 rg.mean((1, 2)), yb.mean((1, 2)), rg.flatten(1).std(1), yb.flatten(1).std(1), chroma.mean((1, 2))]
        return torch.stack(feats, 1)

    def _temporal(self, gv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global views ``(N, K, 3, S, S)`` -> (fusion input ``(N, 2K-1, S/2, S/2)``, stats ``(N, 8)``).

        The first :data:`TEMPORAL_STATS` columns are the statistics of every architecture; the
        last, used by :data:`STILL_ARCHS`, is the share of still steps (a step below
        :data:`STILL_REL` of the segment's mean step, counted linearly): with every frame held
        twice about half of the steps are still, held three times two thirds.
        """
        n, k = gv.shape[:2]
        y = self._luma(gv.flatten(0, 1))
        y = F.avg_pool2d(y, 2).view(n, k, y.shape[-2] // 2, y.shape[-1] // 2)
        lum = y.mean((2, 3))                                                # (N, K) brightness
        if k == 1:
            return y, y.new_zeros(n, TEMPORAL_STATS + 1)
        d = y[:, 1:] - y[:, :-1]                                            # (N, K-1, s, s)
        mag = d.abs().mean((2, 3))                                          # (N, K-1) step sizes
        mu = mag.mean(1, keepdim=True)
        rel = mag / (mu + 1e-3)                                             # scale-free: a pan's speed cancels
        if k > 2:
            a, b = d[:, 1:].flatten(2), d[:, :-1].flatten(2)
            cos = (a * b).sum(2) / (a.norm(dim=2) * b.norm(dim=2) + 1e-4)   # consecutive steps agree?
            cos_min, cos_mean = cos.amin(1), cos.mean(1)
        else:
            cos_min = cos_mean = mag.new_zeros(n)
        dl = (lum[:, 1:] - lum[:, :-1]).abs()
        still = ((STILL_REL - rel) / STILL_REL).clamp(0.0, 1.0).mean(1)
        stats = torch.stack((torch.log(mu.squeeze(1) + 1e-3), rel.amin(1), rel.amax(1), cos_min, cos_mean,
                             dl.amax(1) / (mu.squeeze(1) + 1e-2), lum.std(1), still), 1)
        return torch.cat((y, d), 1), stats

    def features(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pathways' outputs per segment before fusion: ``fragment`` ``(N, 16w)``, ``global``
        ``(N, 8w)``, ``temporal`` ``(N, 4w)``, ``stats`` (normalised statistics) and ``hidden``
        ``(N, 4w)``, the fused MLP output the readouts read."""
        n = fragments.shape[0]
        s = self.config.spatial_stride
        fr = fragments[:, ::s]
        ks = fr.shape[1]
        fr = fr.flatten(0, 1)
        f = self.fragment_net(fr)                                           # (N*Ks, C, 7, 7)
        f = torch.cat((f.mean((2, 3)), f.flatten(2).std(2)), 1)             # mean and spread over patches
        f = f.view(n, ks, -1).mean(1)
        patches = self._patches(fr)                                         # luma, shared by two statistics
        nss = self._nss(patches).view(n, ks, -1).mean(1)
        gs = global_view[:, ::s].flatten(0, 1)
        g = self.global_net(gs).mean((2, 3)).view(n, ks, -1).mean(1)
        fusion, tstats = self._temporal(global_view)
        t = self.temporal_net(fusion).mean((2, 3))
        parts = [nss, tstats[:, :TEMPORAL_STATS]]
        if self.config.arch >= 3:
            parts.append(self._colour_stats(gs).view(n, ks, -1).mean(1))
        if self.config.arch in BLOCKINESS_ARCHS:
            parts.append(self._blockiness(patches).view(n, ks, -1).mean(1))
        if self.config.arch in STILL_ARCHS:
            parts.append(tstats[:, TEMPORAL_STATS:])
        stats = self.stats_norm(torch.cat(parts, 1))
        h = self.mlp(torch.cat((f, g, t, stats), 1))
        return {"fragment": f, "global": g, "temporal": t, "stats": stats, "hidden": h}

    def forward(self, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(fragments, global_view)["hidden"]
        return {
            "score": 1.0 + 4.0 * torch.sigmoid(self.score_out(h).squeeze(1)),
            "attribution": self.attribution_out(h),
            "severity": torch.sigmoid(self.severity_out(h)),
        }

    def example_inputs(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        return self.config.example_inputs(n)

    def sampling_config(self, **overrides: Any) -> SamplingConfig:
        """The :class:`SamplingConfig` whose views match this head's input sizes."""
        return self.config.sampling_config(**overrides)


OUTPUT_NAMES = ("score", "attribution", "severity")
