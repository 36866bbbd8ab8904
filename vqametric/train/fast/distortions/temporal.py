"""Temporal degradations as index transforms (the source frame of every output frame; ``BLACK``
is a black frame): stutter, freeze, frame drop, flicker, shake, and VQAThinker's six temporal
perturbations."""
from __future__ import annotations

from typing import Any

import numpy as np

from .levels import (BLACK, DROP_FRACTION, FLICKER_AMPLITUDE, FREEZE_FRAMES, LEVELS, LOCAL_SHUFFLE_WINDOW,
                     SHAKE_FRACTION, TEMPORAL_PERTURBATIONS, as_array, level_param, like_input, rng_for, to_uint8)


def apply_indices(clip, indices) -> Any:
    """``clip[indices]`` where index :data:`BLACK` (-1) gives an all-black frame."""
    a, t = as_array(clip)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.max() >= len(a) or idx.min() < BLACK):
        raise ValueError(f"indices must lie in [-1, {len(a) - 1}]")
    out = a[np.maximum(idx, 0)]
    out[idx == BLACK] = 0
    return like_input(out, t)


def stutter_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Each frame held ``level + 1`` times: ``max(0, ((i + p) // h) * h - p)``, ``h = level + 1``,
    phase ``p`` seeded in ``[0, h)``."""
    hold = level_param(LEVELS, level) + 1
    p = int(rng_for(seed).integers(0, hold))
    i = np.arange(n)
    return np.maximum(0, ((i + p) // hold) * hold - p)


def freeze_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Frame ``s`` (seeded) is shown for ``L`` = :data:`FREEZE_FRAMES` extra frames (at most
    ``n - 1``); afterwards playback resumes at the frame due then (a jump)."""
    run = min(level_param(FREEZE_FRAMES, level), n - 1)
    idx = np.arange(n)
    if run < 1:
        return idx
    s = int(rng_for(seed).integers(0, n - run))
    idx[s + 1: s + run + 1] = s
    return idx


def drop_indices(n: int, level: int, seed: int = 0) -> np.ndarray:
    """Kept frames after dropping ``max(1, round(f * n))`` seeded frames (never frame 0),
    ``f`` = :data:`DROP_FRACTION`; the result is shorter than ``n``."""
    d = min(n - 1, max(1, int(round(level_param(DROP_FRACTION, level) * n))))
    drop = rng_for(seed).choice(np.arange(1, n), size=d, replace=False)
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
    a = level_param(FLICKER_AMPLITUDE, level)
    p = int(rng_for(seed).integers(0, 2))
    return 1.0 + a * (-1.0) ** (np.arange(n) + p)


def flicker(clip, level: int, seed: int = 0):
    """Brightness alternating from frame to frame (:func:`flicker_gains`)."""
    a, t = as_array(clip)
    g = flicker_gains(len(a), level, seed).astype(np.float32)
    return like_input(to_uint8(a.astype(np.float32) * g[:, None, None, None]), t)


def shake_offsets(n: int, height: int, width: int, level: int, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` integer ``(dy, dx)`` per frame, uniform in ``+-A``, ``A`` = :data:`SHAKE_FRACTION`
    of the short side (at least 1 px)."""
    amp = max(1.0, level_param(SHAKE_FRACTION, level) * min(height, width))
    return np.rint(rng_for(seed).uniform(-amp, amp, size=(n, 2))).astype(np.int64)


def shake(clip, level: int, seed: int = 0):
    """Camera shake: every frame translated by :func:`shake_offsets` (edges replicated)."""
    a, t = as_array(clip)
    n, h, w = a.shape[:3]
    off = shake_offsets(n, h, w, level, seed)
    m = int(np.abs(off).max())
    padded = np.pad(a, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge") if m else a
    out = np.empty_like(a)
    for i, (dy, dx) in enumerate(off):
        # content moves by (dy, dx): output pixel (y, x) shows input (y - dy, x - dx)
        out[i] = padded[i, m - dy: m - dy + h, m - dx: m - dx + w]
    return like_input(out, t)


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
    rng = rng_for(seed)
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
