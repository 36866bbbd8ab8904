"""Synthetic degradations of clips, with documented severity levels and seeded randomness.

Every function here is pure: it takes a clip ``(T, H, W, 3)`` ``uint8`` (numpy array, or a torch
tensor in the same channels-last layout) and returns a new clip of the same type; the input is
never modified. Spatial degradations keep the shape; temporal ones keep ``H, W`` and may change
``T`` (:func:`frame_drop`). ``level`` is an integer severity from 1 (just visible) to 5 (severe);
the parameter of each level is in the tables of :mod:`.levels` (importable from here too) so that
documentation, tests and training labels agree. ``seed`` makes every random choice reproducible (functions without
randomness accept it for a uniform signature).

Spatial (per frame):

=====================  ======================================================  ===================
function               level 1 .. 5                                            attribution class
=====================  ======================================================  ===================
gaussian_blur          sigma (px) 0.8, 1.3, 2.0, 3.0, 4.5                      blur
gaussian_noise         std (8-bit units) 4, 8, 13, 20, 30, new noise per frame noise
jpeg                   MJPEG qscale 6, 12, 20, 32, 50 (PyAV encode + decode)   compression
compress (x264)        CRF 24, 30, 36, 42, 48 (libx264 veryfast)               compression
compress (x265)        CRF 28, 33, 38, 44, 50 (libx265 superfast)              compression
compress (av1)         CRF 32, 44, 52, 58, 63 (libsvtav1 preset 10)            compression
downscale_upscale      scale 0.75, 0.5, 0.35, 0.25, 0.18 (swscale via PyAV)   scaling
exposure               under: gain 0.8..0.27 with gamma 1.1..1.8;              exposure
                       over: gain 1.25..2.7 with gamma 0.95..0.75
colour                 desaturate (x0.7..x0), saturate (x1.3..x3), or a tint   colour
                       of 6..45 8-bit units away from grey
=====================  ======================================================  ===================

Temporal:

=====================  ======================================================  ===================
stutter                every frame held ``level + 1`` times (15 fps .. 5 fps   stutter
                       from 30 fps), seeded phase
freeze                 one frame held for 2, 3, 5, 8, 12 extra frames, then    stutter
                       playback jumps ahead (time keeps running)
frame_drop             10, 20, 30, 40, 50 % of frames removed (T shrinks), the  stutter
                       motion jumps where frames are missing
flicker                brightness alternates by +-4, 8, 13, 20, 30 %           flicker
shake                  per-frame random translation up to 0.4, 0.8, 1.5, 2.5,  shake
                       4 % of the short side
=====================  ======================================================  ===================

Modules: :mod:`.levels` (the tables), :mod:`.spatial`, :mod:`.temporal`, :mod:`.stills`.

VQAThinker's six temporal perturbations are index transforms
(:func:`temporal_perturbation_indices`), applied with :func:`apply_indices`; they have no level.
:func:`make_clip_from_image` turns a still into a moving clip (pan or zoom) so that codecs and
temporal checks see real motion.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from .levels import (BLACK, BLUR_SIGMA, CODEC_CRF, CODEC_SETTINGS, DECODERS, DROP_FRACTION, EXPOSURE_OVER,
                     EXPOSURE_UNDER, FLICKER_AMPLITUDE, FREEZE_FRAMES, JPEG_QSCALE, LEVELS, LOCAL_SHUFFLE_WINDOW,
                     NOISE_STD, SATURATION_DOWN, SATURATION_UP, SCALE_FACTOR, SHAKE_FRACTION, TEMPORAL_PERTURBATIONS,
                     TINT_SHIFT)
from .spatial import (COLOUR_MODES, colour, compress, downscale_upscale, encode_decode, exposure, exposure_lut,
                      gaussian_blur, gaussian_kernel, gaussian_noise, jpeg)
from .stills import downsample_image, even_size, make_clip_from_image, resize_area
from .temporal import (apply_indices, drop_indices, flicker, flicker_gains, frame_drop, freeze, freeze_indices, shake,
                       shake_offsets, stutter, stutter_indices, temporal_perturbation, temporal_perturbation_indices)

# ----------------------------------------------------------------------------------------------
# registry of ladders: name -> (function(clip, level, seed), attribution class of the head)
LADDERS: dict[str, tuple[Callable[..., Any], str]] = {
    "blur": (gaussian_blur, "blur"),
    "noise": (gaussian_noise, "noise"),
    "jpeg": (jpeg, "compression"),
    "x264": (partial(compress, codec="x264"), "compression"),
    "x265": (partial(compress, codec="x265"), "compression"),
    "av1": (partial(compress, codec="av1"), "compression"),
    "scaling": (downscale_upscale, "scaling"),
    "exposure": (exposure, "exposure"),
    "colour": (colour, "colour"),
    "stutter": (stutter, "stutter"),
    "freeze": (freeze, "stutter"),
    "frame_drop": (frame_drop, "stutter"),
    "flicker": (flicker, "flicker"),
    "shake": (shake, "shake"),
}
SPATIAL_LADDERS = ("blur", "noise", "jpeg", "x264", "x265", "av1", "scaling", "exposure", "colour")
TEMPORAL_LADDERS = ("stutter", "freeze", "frame_drop", "flicker", "shake")
# attribution class of each VQAThinker perturbation (None: not a visible defect for a pan; see docs)
PERTURBATION_CLASS = {"shuffle": "stutter", "local_shuffle": "stutter", "reverse": None, "jitter": "stutter",
                      "duplicate": "stutter", "black": "flicker"}


def degrade(clip, name: str, level: int, seed: int = 0):
    """Apply ladder ``name`` (a key of :data:`LADDERS`) at ``level``."""
    if name not in LADDERS:
        raise ValueError(f"unknown distortion {name!r}; known: {sorted(LADDERS)}")
    return LADDERS[name][0](clip, level, seed=seed)


__all__ = ["LEVELS", "BLUR_SIGMA", "NOISE_STD", "JPEG_QSCALE", "CODEC_CRF", "CODEC_SETTINGS", "DECODERS",
           "SCALE_FACTOR", "EXPOSURE_UNDER", "EXPOSURE_OVER", "SATURATION_DOWN", "SATURATION_UP", "TINT_SHIFT",
           "FREEZE_FRAMES", "DROP_FRACTION", "FLICKER_AMPLITUDE", "SHAKE_FRACTION", "TEMPORAL_PERTURBATIONS",
           "LOCAL_SHUFFLE_WINDOW", "BLACK", "gaussian_kernel", "gaussian_blur", "gaussian_noise", "jpeg",
           "encode_decode", "compress", "downscale_upscale", "exposure_lut", "exposure", "COLOUR_MODES", "colour",
           "apply_indices", "stutter_indices", "freeze_indices", "drop_indices", "stutter", "freeze", "frame_drop",
           "flicker_gains", "flicker", "shake_offsets", "shake", "temporal_perturbation_indices",
           "temporal_perturbation", "LADDERS", "SPATIAL_LADDERS", "TEMPORAL_LADDERS", "PERTURBATION_CLASS", "degrade",
           "even_size", "resize_area", "downsample_image", "make_clip_from_image"]
