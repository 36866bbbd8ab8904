"""Spatial degradations, frame by frame: blur, noise, JPEG, video codecs, scaling, exposure, colour."""
from __future__ import annotations

import fractions
import os

import av
import numpy as np
import torch

from ....filters import gaussian_kernel, separable_filter

from .levels import (BLUR_SIGMA, CODEC_CRF, CODEC_SETTINGS, DECODERS, EXPOSURE_OVER, EXPOSURE_UNDER, JPEG_QSCALE,
                     NOISE_STD, SATURATION_DOWN, SATURATION_UP, SCALE_FACTOR, TINT_SHIFT, as_array, level_param,
                     like_input, rng_for, to_uint8)


def _separable_filter(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Filter every frame of ``(T, H, W, 3)`` with ``k`` along rows and columns
    (:func:`vqametric.filters.separable_filter`); float32 out."""
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float()                    # (T, 3, H, W)
    return separable_filter(x, torch.from_numpy(k.astype(np.float32))).permute(0, 2, 3, 1).numpy()


def gaussian_blur(clip, level: int, seed: int = 0):
    """Gaussian blur of every frame, sigma :data:`BLUR_SIGMA` (deterministic)."""
    a, t = as_array(clip)
    return like_input(to_uint8(_separable_filter(a, gaussian_kernel(level_param(BLUR_SIGMA, level)))), t)


def gaussian_noise(clip, level: int, seed: int = 0):
    """Additive white Gaussian noise, std :data:`NOISE_STD` in 8-bit units, new noise per frame."""
    a, t = as_array(clip)
    std = level_param(NOISE_STD, level)
    noise = rng_for(seed).normal(0.0, std, a.shape).astype(np.float32)
    return like_input(to_uint8(a.astype(np.float32) + noise), t)


def _pad_even(a: np.ndarray, width_multiple: int = 2) -> np.ndarray:
    """Edge-pad the height to even and the width to a multiple of ``width_multiple`` (even)."""
    ph, pw = a.shape[1] % 2, -a.shape[2] % width_multiple
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return a


def _yuv_frame(rgb: np.ndarray, pix_fmt: str):
    """An RGB frame converted to ``pix_fmt`` (swscale), copied into a freshly allocated frame."""
    planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt).to_ndarray()
    return av.VideoFrame.from_ndarray(planes, format=pix_fmt)


def jpeg(clip, level: int, seed: int = 0):
    """JPEG compression of every frame (PyAV MJPEG encoder, 4:2:0, qscale :data:`JPEG_QSCALE`)."""
    a, t = as_array(clip)
    h, w = a.shape[1:3]
    q = str(level_param(JPEG_QSCALE, level))
    p = _pad_even(a)
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = p.shape[2], p.shape[1], "yuvj420p"
    enc.time_base = fractions.Fraction(1, 25)
    enc.options = {"qmin": q, "qmax": q}
    dec = av.CodecContext.create("mjpeg", "r")
    out = []
    for i, f in enumerate(p):
        frame = _yuv_frame(f, "yuvj420p")
        frame.pts = i
        for packet in enc.encode(frame):
            out += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    for packet in enc.encode(None):
        out += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    return like_input(np.stack(out)[:, :h, :w], t)


def encode_decode(clip, codec: str, crf: int, fps: int = 25) -> np.ndarray:
    """Encode ``clip`` with ``codec`` (``x264``/``x265``/``av1``) at ``crf`` in memory and decode it
    back (bare codec contexts, no container; 4:2:0, same frame count). Returns a numpy clip.

    Frames are edge-padded to a width that is a multiple of 128 px and cropped back after decoding:
    on frames whose chroma rows are not a multiple of 64 bytes libx264's AVX-512 code gave output
    that varied from run to run. With that, single-threaded encoders and freshly allocated input
    frames, the output is bit-identical from run to run (checked in the tests)."""
    a, _ = as_array(clip)
    if codec not in CODEC_SETTINGS:
        raise ValueError(f"codec must be one of {sorted(CODEC_SETTINGS)}, got {codec!r}")
    name, opts = CODEC_SETTINGS[codec]
    if codec == "av1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration otherwise
    h, w = a.shape[1:3]
    p = _pad_even(a, width_multiple=128)
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = p.shape[2], p.shape[1], "yuv420p"
    enc.time_base = fractions.Fraction(1, fps)
    enc.framerate = fractions.Fraction(fps, 1)
    enc.options = {**opts, "crf": str(int(crf))}
    enc.thread_count = 1
    packets = []
    for i in range(len(p) + 1):
        frame = None
        if i < len(p):
            frame = _yuv_frame(p[i], "yuv420p")
            frame.pts = i
        packets += enc.encode(frame)
    # decode only after encoding has finished: decoding while libx264 was still encoding made
    # x264's output vary from run to run
    dec = av.CodecContext.create(DECODERS[codec], "r")
    out: list[np.ndarray] = []
    for packet in packets + [None]:
        out += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    if len(out) != len(a):
        raise RuntimeError(f"{codec} round trip returned {len(out)} frames for {len(a)}")
    return np.stack(out)[:, :h, :w]


def compress(clip, level: int, seed: int = 0, codec: str = "x264"):
    """Video codec compression (encode + decode in memory), CRF from :data:`CODEC_CRF`."""
    a, t = as_array(clip)
    if codec not in CODEC_CRF:
        raise ValueError(f"codec must be one of {sorted(CODEC_CRF)}, got {codec!r}")
    return like_input(encode_decode(a, codec, level_param(CODEC_CRF[codec], level)), t)


def downscale_upscale(clip, level: int, seed: int = 0, down: str = "BICUBIC", up: str = "BILINEAR"):
    """Downscale by :data:`SCALE_FACTOR` and upscale back to the original size (swscale, RGB)."""
    a, t = as_array(clip)
    h, w = a.shape[1:3]
    f = level_param(SCALE_FACTOR, level)
    sh, sw = max(2, int(round(h * f))), max(2, int(round(w * f)))
    out = np.empty_like(a)
    for i, frame in enumerate(a):
        small = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(width=sw, height=sh, interpolation=down)
        out[i] = small.reformat(width=w, height=h, interpolation=up).to_ndarray(format="rgb24")
    return like_input(out, t)


def exposure_lut(level: int, direction: str) -> np.ndarray:
    """The 256-entry tone curve ``255 * gain * (x / 255) ** gamma`` of an exposure error."""
    table = {"under": EXPOSURE_UNDER, "over": EXPOSURE_OVER}.get(direction)
    if table is None:
        raise ValueError(f"direction must be 'under' or 'over', got {direction!r}")
    gain, gamma = level_param(table, level)
    x = np.arange(256, dtype=np.float64) / 255.0
    return to_uint8(255.0 * gain * x ** gamma)


def exposure(clip, level: int, seed: int = 0, direction: str | None = None):
    """Under- or over-exposure (``direction``; seeded choice when None): gain and gamma per level."""
    a, t = as_array(clip)
    direction = direction or ("under", "over")[int(rng_for(seed).integers(0, 2))]
    return like_input(exposure_lut(level, direction)[a], t)


COLOUR_MODES = ("desaturate", "saturate", "tint")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def colour(clip, level: int, seed: int = 0, mode: str | None = None):
    """Colour error: ``mode`` desaturate / saturate (chroma scaled around luma) or tint (a constant
    shift of :data:`TINT_SHIFT` 8-bit units in a seeded direction orthogonal to grey)."""
    a, t = as_array(clip)
    rng = rng_for(seed)
    mode = mode or COLOUR_MODES[int(rng.integers(0, 3))]
    x = a.astype(np.float32)
    if mode in ("desaturate", "saturate"):
        s = level_param(SATURATION_DOWN if mode == "desaturate" else SATURATION_UP, level)
        luma = (x @ _LUMA)[..., None]
        y = luma + s * (x - luma)
    elif mode == "tint":
        d = rng.normal(size=3)
        d -= d.mean()                       # orthogonal to (1, 1, 1): no brightness change
        d /= np.linalg.norm(d)
        y = x + (level_param(TINT_SHIFT, level) * d).astype(np.float32)
    else:
        raise ValueError(f"mode must be one of {COLOUR_MODES}, got {mode!r}")
    return like_input(to_uint8(y), t)
