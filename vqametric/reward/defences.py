"""Randomised input transforms that make a reward harder to game.

A generator optimised against a fixed, differentiable quality model can raise the score with
small pixel patterns the model over-reads (an adversarial example) instead of better video.
Transforms drawn at random on every call, before the views are built, break such patterns up:
a pattern must then survive all of them to pay off, while real quality (sharpness, noise, blocks,
exposure, motion) survives them by construction. Each transform takes float RGB ``(M, 3, H, W)``
in [0, 1] (the ``M`` frames of one call, transformed alike so that motion between them is kept)
and a ``numpy`` generator, and is differentiable:

* ``"crop"``: a random crop keeping ``CROP_KEEP``-1 of each side;
* ``"rescale"``: down by a random factor in ``RESCALE_RANGE`` (antialiased) and back up to the
  size it had, a random low-pass;
* ``"blur"``: a Gaussian blur of random sigma in ``BLUR_SIGMA`` pixels;
* ``"noise"``: additive Gaussian noise of standard deviation ``NOISE_STD`` (randomised smoothing).

:data:`DEFENCES` lists them with ``"views"`` (random frame windows and fragment boxes,
:mod:`vqametric.reward.views`), which is not a pixel transform. The choice of the reward's default
and the measured effect of each are in docs/training-generators.md
(``benchmarks/bench_reward_attack.py``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidOption
from ..filters import gaussian_blur

CROP_KEEP = 0.85            # a crop keeps between this share of each side and all of it
RESCALE_RANGE = (0.7, 1.0)  # down-scaling factor of "rescale"
BLUR_SIGMA = (0.3, 1.0)     # sigma of "blur", pixels
NOISE_STD = 2.0 / 255.0     # standard deviation of "noise"


def random_crop(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    ch, cw = (max(1, int(round(n * rng.uniform(CROP_KEEP, 1.0)))) for n in (h, w))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return x[..., top:top + ch, left:left + cw]


def random_rescale(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = rng.uniform(*RESCALE_RANGE)
    small = (max(1, int(round(h * s))), max(1, int(round(w * s))))
    if small == (h, w):
        return x
    y = F.interpolate(x, size=small, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


def random_blur(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return gaussian_blur(x, float(rng.uniform(*BLUR_SIGMA)))


def random_noise(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    g = torch.Generator(device=x.device).manual_seed(int(rng.integers(2 ** 62)))
    n = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + NOISE_STD * n).clamp(0.0, 1.0)


TRANSFORMS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "crop": random_crop, "rescale": random_rescale, "blur": random_blur, "noise": random_noise}
DEFENCES = ("views",) + tuple(TRANSFORMS)


def check_defences(defences: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise a defence choice (a name, a ``+``-joined string, a sequence, ``None`` or
    ``"none"``) to a tuple of names from :data:`DEFENCES`; :class:`InvalidOption` otherwise."""
    if defences is None:
        return ()
    names = defences.split("+") if isinstance(defences, str) else list(defences)
    names = [n.strip() for n in names if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in DEFENCES]
    if unknown:
        raise InvalidOption(f"unknown defence(s) {unknown}; choose from {list(DEFENCES)} (or 'none')")
    return tuple(dict.fromkeys(names))


def apply_transforms(x: torch.Tensor, defences: Sequence[str], rng: np.random.Generator) -> torch.Tensor:
    """Apply the pixel transforms among ``defences`` to ``x`` ``(M, 3, H, W)``, in the order of
    :data:`TRANSFORMS` (crop, rescale, blur, noise), with parameters drawn from ``rng``."""
    for name, fn in TRANSFORMS.items():
        if name in defences:
            x = fn(x, rng)
    return x
