"""Separable image filters on torch tensors (differentiable), shared by the training recipes'
synthetic degradations and the reward's defences."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian taps for ``sigma`` pixels (radius ``ceil(3 sigma)``), float64, summing to 1."""
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    r = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def separable_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter ``(N, C, H, W)`` float with the odd-length 1-D ``taps`` along rows, then columns;
    borders reflected (replicated when a side is not longer than the radius). Same shape out."""
    c, r = x.shape[1], taps.numel() // 2
    taps = taps.to(x)
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(N, C, H, W)`` float (:func:`gaussian_kernel` taps, :func:`separable_filter`)."""
    return separable_filter(x, torch.from_numpy(gaussian_kernel(sigma).astype(np.float32)))
