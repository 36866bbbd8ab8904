"""Synthetic degradations of clips, with documented severity levels and seeded randomness.

Every function here is pure: it takes a clip ``(T, H, W, 3)`` ``uint8`` (numpy array, or a torch
tensor in the same channels-last layout) and returns a new clip of the same type; the input is
never modified. Spatial degradations keep the shape; temporal ones keep ``H, W`` and may change
``T`` (:func:`frame_drop`). ``level`` is an integer severity from 1 (just visible) to 5 (severe);
the parameter of each level is in the module-level tables below so that documentation, tests and
training labels agree. ``seed`` makes every random choice reproducible (functions without
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

VQAThinker's six temporal perturbations are index transforms
(:func:`temporal_perturbation_indices`), applied with :func:`apply_indices`; they have no level.
:func:`make_clip_from_image` turns a still into a moving clip (pan or zoom) so that codecs and
temporal checks see real motion.
"""
from __future__ import annotations

import fractions
import os
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

LEVELS = (1, 2, 3, 4, 5)

BLUR_SIGMA = (0.8, 1.3, 2.0, 3.0, 4.5)
NOISE_STD = (4.0, 8.0, 13.0, 20.0, 30.0)
JPEG_QSCALE = (6, 12, 20, 32, 50)
CODEC_CRF = {"x264": (24, 30, 36, 42, 48), "x265": (28, 33, 38, 44, 50), "av1": (32, 44, 52, 58, 63)}
CODEC_SETTINGS = {
    # single-threaded so that the output does not depend on the machine's core count
    "x264": ("libx264", {"preset": "veryfast", "threads": "1"}),
    "x265": ("libx265", {"preset": "superfast", "x265-params": "log-level=error:pools=1:frame-threads=1"}),
    "av1": ("libsvtav1", {"preset": "10", "svtav1-params": "lp=1"}),
}
DECODERS = {"x264": "h264", "x265": "hevc", "av1": "libdav1d"}
SCALE_FACTOR = (0.75, 0.5, 0.35, 0.25, 0.18)
EXPOSURE_UNDER = ((0.8, 1.1), (0.65, 1.25), (0.5, 1.4), (0.38, 1.6), (0.27, 1.8))    # (gain, gamma)
EXPOSURE_OVER = ((1.25, 0.95), (1.5, 0.9), (1.8, 0.85), (2.2, 0.8), (2.7, 0.75))
SATURATION_DOWN = (0.7, 0.5, 0.3, 0.15, 0.0)
SATURATION_UP = (1.3, 1.6, 2.0, 2.5, 3.0)
TINT_SHIFT = (6.0, 12.0, 20.0, 30.0, 45.0)
FREEZE_FRAMES = (2, 3, 5, 8, 12)
DROP_FRACTION = (0.1, 0.2, 0.3, 0.4, 0.5)
FLICKER_AMPLITUDE = (0.04, 0.08, 0.13, 0.2, 0.3)
SHAKE_FRACTION = (0.004, 0.008, 0.015, 0.025, 0.04)

TEMPORAL_PERTURBATIONS = ("shuffle", "local_shuffle", "reverse", "jitter", "duplicate", "black")
LOCAL_SHUFFLE_WINDOW = 4
BLACK = -1  # index meaning "a black frame" in index transforms


# ----------------------------------------------------------------------------------------------
# helpers
def _to_numpy(clip: Any) -> tuple[np.ndarray, bool]:
    """``(clip as a uint8 numpy (T, H, W, 3) array, whether it came as a torch tensor)``."""
    is_torch = isinstance(clip, torch.Tensor)
    a = clip.detach().cpu().numpy() if is_torch else np.asarray(clip)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"a clip must have shape (T, H, W, 3), got {tuple(a.shape)}")
    if a.dtype != np.uint8:
        raise ValueError(f"a clip must be uint8 (0-255), got {a.dtype}")
    if a.shape[0] < 1:
        raise ValueError("the clip has no frames")
    return a, is_torch


def _back(a: np.ndarray, is_torch: bool):
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a) if is_torch else a


def _param(table, level: int):
    if int(level) != level or not 1 <= level <= 5:
        raise ValueError(f"level must be an integer from 1 to 5, got {level!r}")
    return table[int(level) - 1]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# spatial
def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian taps for ``sigma`` (radius ``ceil(3 sigma)``), summing to 1."""
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    r = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _separable_filter(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Filter every frame with ``k`` along rows and columns (reflect padding); float32 out."""
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float()                    # (T, 3, H, W)
    r = len(k) // 2
    kt = torch.from_numpy(k.astype(np.float32))
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, 0, 0), mode=mode)
    x = F.conv2d(x, kt.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.pad(x, (0, 0, r, r), mode=mode)
    x = F.conv2d(x, kt.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.permute(0, 2, 3, 1).numpy()


def gaussian_blur(clip, level: int, seed: int = 0):
    """Gaussian blur of every frame, sigma :data:`BLUR_SIGMA` (deterministic)."""
    a, t = _to_numpy(clip)
    return _back(_to_uint8(_separable_filter(a, gaussian_kernel(_param(BLUR_SIGMA, level)))), t)


def gaussian_noise(clip, level: int, seed: int = 0):
    """Additive white Gaussian noise, std :data:`NOISE_STD` in 8-bit units, new noise per frame."""
    a, t = _to_numpy(clip)
    std = _param(NOISE_STD, level)
    noise = _rng(seed).normal(0.0, std, a.shape).astype(np.float32)
    return _back(_to_uint8(a.astype(np.float32) + noise), t)


def _pad_even(a: np.ndarray, width_multiple: int = 2) -> np.ndarray:
    """Edge-pad the height to even and the width to a multiple of ``width_multiple`` (even)."""
    ph, pw = a.shape[1] % 2, -a.shape[2] % width_multiple
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return a


def _av():
    import av
    return av


def _yuv_frame(av, rgb: np.ndarray, pix_fmt: str):
    """An RGB frame converted to ``pix_fmt`` (swscale), copied into a freshly allocated frame."""
    planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt).to_ndarray()
    return av.VideoFrame.from_ndarray(planes, format=pix_fmt)


def jpeg(clip, level: int, seed: int = 0):
    """JPEG compression of every frame (PyAV MJPEG encoder, 4:2:0, qscale :data:`JPEG_QSCALE`)."""
    av = _av()
    a, t = _to_numpy(clip)
    h, w = a.shape[1:3]
    q = str(_param(JPEG_QSCALE, level))
    p = _pad_even(a)
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = p.shape[2], p.shape[1], "yuvj420p"
    enc.time_base = fractions.Fraction(1, 25)
    enc.options = {"qmin": q, "qmax": q}
    dec = av.CodecContext.create("mjpeg", "r")
    out = []
    for i, f in enumerate(p):
        frame = _yuv_frame(av, f, "yuvj420p")
        frame.pts = i
        for packet in enc.encode(frame):
            out += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    for packet in enc.encode(None):
        out += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    return _back(np.stack(out)[:, :h, :w], t)


def encode_decode(clip, codec: str, crf: int, fps: int = 25) -> np.ndarray:
    """Encode ``clip`` with ``codec`` (``x264``/``x265``/``av1``) at ``crf`` in memory and decode it
    back (bare codec contexts, no container; 4:2:0, same frame count). Returns a numpy clip.

    Frames are edge-padded to a width that is a multiple of 128 px and cropped back after decoding:
    on frames whose chroma rows are not a multiple of 64 bytes libx264's AVX-512 code gave output
    that varied from run to run. With that, single-threaded encoders and freshly allocated input
    frames, the output is bit-identical from run to run (checked in the tests)."""
    av = _av()
    a, _ = _to_numpy(clip)
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
            frame = _yuv_frame(av, p[i], "yuv420p")
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
    a, t = _to_numpy(clip)
    if codec not in CODEC_CRF:
        raise ValueError(f"codec must be one of {sorted(CODEC_CRF)}, got {codec!r}")
    return _back(encode_decode(a, codec, _param(CODEC_CRF[codec], level)), t)


def downscale_upscale(clip, level: int, seed: int = 0, down: str = "BICUBIC", up: str = "BILINEAR"):
    """Downscale by :data:`SCALE_FACTOR` and upscale back to the original size (swscale, RGB)."""
    av = _av()
    a, t = _to_numpy(clip)
    h, w = a.shape[1:3]
    f = _param(SCALE_FACTOR, level)
    sh, sw = max(2, int(round(h * f))), max(2, int(round(w * f)))
    out = np.empty_like(a)
    for i, frame in enumerate(a):
        small = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(width=sw, height=sh, interpolation=down)
        out[i] = small.reformat(width=w, height=h, interpolation=up).to_ndarray(format="rgb24")
    return _back(out, t)


def exposure_lut(level: int, direction: str) -> np.ndarray:
    """The 256-entry tone curve ``255 * gain * (x / 255) ** gamma`` of an exposure error."""
    table = {"under": EXPOSURE_UNDER, "over": EXPOSURE_OVER}.get(direction)
    if table is None:
        raise ValueError(f"direction must be 'under' or 'over', got {direction!r}")
    gain, gamma = _param(table, level)
    x = np.arange(256, dtype=np.float64) / 255.0
    return _to_uint8(255.0 * gain * x ** gamma)


def exposure(clip, level: int, seed: int = 0, direction: str | None = None):
    """Under- or over-exposure (``direction``; seeded choice when None): gain and gamma per level."""
    a, t = _to_numpy(clip)
    direction = direction or ("under", "over")[int(_rng(seed).integers(0, 2))]
    return _back(exposure_lut(level, direction)[a], t)


COLOUR_MODES = ("desaturate", "saturate", "tint")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def colour(clip, level: int, seed: int = 0, mode: str | None = None):
    """Colour error: ``mode`` desaturate / saturate (chroma scaled around luma) or tint (a constant
    shift of :data:`TINT_SHIFT` 8-bit units in a seeded direction orthogonal to grey)."""
    a, t = _to_numpy(clip)
    rng = _rng(seed)
    mode = mode or COLOUR_MODES[int(rng.integers(0, 3))]
    x = a.astype(np.float32)
    if mode in ("desaturate", "saturate"):
        s = _param(SATURATION_DOWN if mode == "desaturate" else SATURATION_UP, level)
        luma = (x @ _LUMA)[..., None]
        y = luma + s * (x - luma)
    elif mode == "tint":
        d = rng.normal(size=3)
        d -= d.mean()                       # orthogonal to (1, 1, 1): no brightness change
        d /= np.linalg.norm(d)
        y = x + (_param(TINT_SHIFT, level) * d).astype(np.float32)
    else:
        raise ValueError(f"mode must be one of {COLOUR_MODES}, got {mode!r}")
    return _back(_to_uint8(y), t)


# ----------------------------------------------------------------------------------------------
# temporal: index transforms (source frame of every output frame; BLACK = a black frame)
def apply_indices(clip, indices) -> Any:
    """``clip[indices]`` where index :data:`BLACK` (-1) gives an all-black frame."""
    a, t = _to_numpy(clip)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.max() >= len(a) or idx.min() < BLACK):
        raise ValueError(f"indices must lie in [-1, {len(a) - 1}]")
    out = a[np.maximum(idx, 0)]
    out[idx == BLACK] = 0
    return _back(out, t)


def stutter_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Each frame held ``level + 1`` times: ``max(0, ((i + p) // h) * h - p)``, ``h = level + 1``,
    phase ``p`` seeded in ``[0, h)``."""
    hold = _param(LEVELS, level) + 1
    p = int(_rng(seed).integers(0, hold))
    i = np.arange(n)
    return np.maximum(0, ((i + p) // hold) * hold - p)


def freeze_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Frame ``s`` (seeded) is shown for ``L`` = :data:`FREEZE_FRAMES` extra frames (at most
    ``n - 1``); afterwards playback resumes at the frame due then (a jump)."""
    run = min(_param(FREEZE_FRAMES, level), n - 1)
    idx = np.arange(n)
    if run < 1:
        return idx
    s = int(_rng(seed).integers(0, n - run))
    idx[s + 1: s + run + 1] = s
    return idx


def drop_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Kept frames after dropping ``max(1, round(f * n))`` seeded frames (never frame 0),
    ``f`` = :data:`DROP_FRACTION`; the result is shorter than ``n``."""
    d = min(n - 1, max(1, int(round(_param(DROP_FRACTION, level) * n))))
    drop = _rng(seed).choice(np.arange(1, n), size=d, replace=False)
    return np.setdiff1d(np.arange(n), drop)


def stutter(clip, level: int, seed: int = 0):
    """Duplicated frames: a lower frame rate shown by repetition (:func:`stutter_indices`)."""
    return apply_indices(clip, stutter_indices(len(clip), level, seed))


def freeze(clip, level: int, seed: int = 0):
    """A frozen picture followed by a jump (:func:`freeze_indices`)."""
    return apply_indices(clip, freeze_indices(len(clip), level, seed))


def frame_drop(clip, level: int, seed: int = 0):
    """Missing frames: the clip gets shorter and the motion jumps (:func:`drop_indices`)."""
    return apply_indices(clip, drop_indices(len(clip), level, seed))


def flicker_gains(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Per-frame brightness gains ``1 + a (-1)^(i + p)``, ``a`` = :data:`FLICKER_AMPLITUDE`,
    seeded phase ``p`` in {0, 1}."""
    a = _param(FLICKER_AMPLITUDE, level)
    p = int(_rng(seed).integers(0, 2))
    return 1.0 + a * (-1.0) ** (np.arange(n) + p)


def flicker(clip, level: int, seed: int = 0):
    """Brightness alternating from frame to frame (:func:`flicker_gains`)."""
    a, t = _to_numpy(clip)
    g = flicker_gains(len(a), level, seed).astype(np.float32)
    return _back(_to_uint8(a.astype(np.float32) * g[:, None, None, None]), t)


def shake_offsets(n: int, height: int, width: int, level: int, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` integer ``(dy, dx)`` per frame, uniform in ``+-A``, ``A`` = :data:`SHAKE_FRACTION`
    of the short side (at least 1 px)."""
    amp = max(1.0, _param(SHAKE_FRACTION, level) * min(height, width))
    return np.rint(_rng(seed).uniform(-amp, amp, size=(n, 2))).astype(np.int64)


def shake(clip, level: int, seed: int = 0):
    """Camera shake: every frame translated by :func:`shake_offsets` (edges replicated)."""
    a, t = _to_numpy(clip)
    n, h, w = a.shape[:3]
    off = shake_offsets(n, h, w, level, seed)
    m = int(np.abs(off).max())
    padded = np.pad(a, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge") if m else a
    out = np.empty_like(a)
    for i, (dy, dx) in enumerate(off):
        # content moves by (dy, dx): output pixel (y, x) shows input (y - dy, x - dx)
        out[i] = padded[i, m - dy: m - dy + h, m - dx: m - dx + w]
    return _back(out, t)


def temporal_perturbation_indices(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """VQAThinker's temporal perturbations of an ``n``-frame clip as source indices.

    * ``shuffle``: a random permutation;
    * ``local_shuffle``: a permutation inside each window of :data:`LOCAL_SHUFFLE_WINDOW` frames;
    * ``reverse``: ``n-1, ..., 0``;
    * ``jitter``: ``clip(i + u_i, 0, n-1)`` with ``u_i`` uniform in {-1, 0, 1};
    * ``duplicate``: frame ``d`` inserted ``r`` (1..min(3, n-1)) times at position ``q`` (0..n),
      then ``r`` of the other positions dropped, so the length stays ``n`` (as in VQAThinker's
      code the drop may hit the original of ``d``, which turns the copy into a move);
    * ``black``: 1-3 positions (at most n) replaced by black frames (index :data:`BLACK`).

    All random draws come from ``numpy.random.default_rng(seed)`` in the order written above.
    """
    rng = _rng(seed)
    idx = np.arange(n)
    if n < 1:
        raise ValueError("n must be at least 1")
    if kind == "shuffle":
        return rng.permutation(n)
    if kind == "local_shuffle":
        w = LOCAL_SHUFFLE_WINDOW
        return np.concatenate([s + rng.permutation(min(w, n - s)) for s in range(0, n, w)])
    if kind == "reverse":
        return idx[::-1].copy()
    if kind == "jitter":
        return np.clip(idx + rng.integers(-1, 2, size=n), 0, n - 1)
    if kind == "duplicate":
        if n < 2:
            return idx
        d = int(rng.integers(0, n))
        r = int(rng.integers(1, min(3, n - 1) + 1))
        q = int(rng.integers(0, n + 1))
        seq = np.concatenate([idx[:q], np.full(r, d), idx[q:]])
        candidates = np.array([i for i in range(n + r) if not q <= i < q + r])
        drop = rng.choice(candidates, size=r, replace=False)
        return np.delete(seq, drop)
    if kind == "black":
        m = int(rng.integers(1, 4))
        out = idx.copy()
        out[rng.choice(n, size=min(m, n), replace=False)] = BLACK
        return out
    raise ValueError(f"unknown temporal perturbation {kind!r}; use one of {TEMPORAL_PERTURBATIONS}")


def temporal_perturbation(clip, kind: str, seed: int = 0):
    """Apply :func:`temporal_perturbation_indices` to a clip."""
    return apply_indices(clip, temporal_perturbation_indices(kind, len(clip), seed))


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


# ----------------------------------------------------------------------------------------------
# stills -> moving clips
def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image resized to ``(height, width, 3)`` by area averaging (swscale ``AREA``)."""
    return _av().VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(
        width=width, height=height, interpolation="AREA").to_ndarray(format="rgb24")


def downsample_image(image: np.ndarray, factor: float) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image shrunk by ``factor`` in (0, 1] (sides rounded to even, area averaging).

    Used to make pristine sources without the 8-px block grid of a JPEG-born photo: averaging over
    a non-integer footprint spreads the grid's steps over every phase (see docs/training-head.md).
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    H, W = image.shape[:2]
    h, w = _even(H * factor), _even(W * factor)
    return image if (h, w) == (H, W) else resize_area(image, h, w)


def make_clip_from_image(image, num_frames: int, motion: str = "pan", seed: int = 0, crop: float = 0.875,
                         max_speed: int = 4):
    """A moving ``(num_frames, h, w, 3)`` uint8 clip cut from a still ``(H, W, 3)`` uint8 image.

    The output size is ``crop`` of each side rounded down to even (448x448 from 512x512).

    * ``pan``: a window of that size moves in a straight line by an integer velocity
      ``(vy, vx)`` per frame (seeded, ``max(|vy|, |vx|)`` from 1 to ``max_speed`` px, reduced to
      what the margin allows); frames are exact pixel copies of the image, so the clip carries
      the image's own quality. A margin too small for 1 px/frame gives a static clip.
    * ``zoom``: a centred (seeded jitter) window grows geometrically from the output size to the
      largest window of the same aspect that fits (zoom out), or the reverse (zoom in, seeded),
      each resized to the output size by area averaging (swscale ``AREA``; never upscaled).
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    is_torch = isinstance(image, torch.Tensor)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    rng = _rng(seed)
    H, W = arr.shape[:2]
    h, w = min(H, _even(H * crop)), min(W, _even(W * crop))
    n = num_frames
    if motion == "pan":
        steps = max(1, n - 1)
        vmax_y = min(max_speed, (H - h) // steps)
        vmax_x = min(max_speed, (W - w) // steps)
        while True:
            vy = int(rng.integers(-vmax_y, vmax_y + 1))
            vx = int(rng.integers(-vmax_x, vmax_x + 1))
            if (vy, vx) != (0, 0) or (vmax_y, vmax_x) == (0, 0):
                break
        travel_y, travel_x = abs(vy) * (n - 1), abs(vx) * (n - 1)
        y0 = int(rng.integers(0, H - h - travel_y + 1)) + (travel_y if vy < 0 else 0)
        x0 = int(rng.integers(0, W - w - travel_x + 1)) + (travel_x if vx < 0 else 0)
        out = np.stack([arr[y0 + vy * i: y0 + vy * i + h, x0 + vx * i: x0 + vx * i + w] for i in range(n)])
    elif motion == "zoom":
        s_max = min(H / h, W / w)
        scales = s_max ** (np.arange(n) / max(1, n - 1))
        if rng.integers(0, 2):
            scales = scales[::-1]
        cy = H / 2 + rng.uniform(-0.5, 0.5) * (H - h * s_max)
        cx = W / 2 + rng.uniform(-0.5, 0.5) * (W - w * s_max)
        frames = []
        for s in scales:
            ch, cw = min(H, int(round(h * s))), min(W, int(round(w * s)))
            top = int(round(min(max(cy - ch / 2, 0), H - ch)))
            left = int(round(min(max(cx - cw / 2, 0), W - cw)))
            win = arr[top: top + ch, left: left + cw]
            frames.append(resize_area(win, h, w) if (ch, cw) != (h, w) else win)
        out = np.stack(frames)
    else:
        raise ValueError(f"motion must be 'pan' or 'zoom', got {motion!r}")
    return _back(out, is_torch)
