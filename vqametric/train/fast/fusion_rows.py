"""The rows of the default model's recipe (:mod:`~vqametric.train.fast.fusion_trainer`): what each
training image gives, as planned segments with their labels.

Per image (:func:`image_rows`): the pristine segment of a moving clip (the image MOS), a spatial or
temporal ladder group (:func:`~vqametric.train.fast.data.make_group`), and for a share of images a
mild x264 pair (CRF 18-30), a static segment (:func:`static_segment`: a still image, a static
shot with sensor noise, a static shot with motion in part of the frame, a tripod shot with 1 px
vibration, all labelled with the image MOS and "none") or a black segment; and for every image the
whole image as a still (:func:`whole_image_row`: what ``vqametric.score("photo.jpg")`` sees; the
pristine row is a 7/8 crop). Rows are a function of ``(image, mos, seed)`` only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ...backends.fusion_head import ATTRIBUTION_CLASSES_V6, DISTORTIONS_V6
from ...backends.head import ATTRIBUTION_CLASSES
from ...sampling import SamplingConfig, make_plan
from . import distortions as D
from .data import frames_to_views, make_group, segment_sources

MILD_CRF = (18, 22, 26, 30)
STATIC_KINDS = ("still", "noise", "partial", "vibration")
P_STATIC, P_BLACK, P_MILD = 0.35, 0.05, 0.2
WHOLE = "whole"   # the ladder name of :func:`whole_image_row`'s static row


@dataclass
class Row:
    """One planned segment and its labels. ``role``: pristine | ladder | temporal | codec | static |
    black. ``rank``: 0 for the pristine segment, else the level (higher is worse) within ``ladder``."""

    fragments: torch.Tensor      # (K, 3, F, F)
    global_view: torch.Tensor    # (K, 3, S, S)
    role: str
    ladder: str
    rank: int
    target: float                # regression target on 1-5, NaN when none
    cls: int                     # index into ATTRIBUTION_CLASSES_V6, -100 when unknown
    severity: np.ndarray         # (len(DISTORTIONS_V6),)
    severity_mask: bool


def _v6_class(old_index: int, distortion: str) -> int:
    if old_index < 0:
        return -100
    if distortion in ("black", "freeze") and old_index > 0:
        return ATTRIBUTION_CLASSES_V6.index(distortion)
    return ATTRIBUTION_CLASSES_V6.index(ATTRIBUTION_CLASSES[old_index])


def _sev(cls: int, value: float) -> np.ndarray:
    row = np.zeros(len(DISTORTIONS_V6), np.float32)
    if cls > 0:
        row[cls - 1] = value
    return row


def _segment_views(frames: np.ndarray, sampling: SamplingConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, H, W, 3)`` uint8 frames of one segment -> ``(fragments (K, ...), global_view (K, ...))``."""
    plan = make_plan(len(frames), frames.shape[1], frames.shape[2], replace(sampling, seed=seed, segment_seconds=0.0))
    v = frames_to_views(frames[segment_sources(plan, 0)], plan)
    return v["fragments"][0], v["global_view"][0]


def static_segment(image: np.ndarray, kind: str, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` frames of static content made from ``image``: ``still`` (the whole image, repeated),
    ``noise`` (a 7/8 crop with fresh sensor noise per frame, sigma 0.5-2.5), ``partial`` (a static
    crop in which a quarter of the frame pans 1-3 px per frame) or ``vibration`` (a static crop
    moved by up to 1 px per frame)."""
    H, W = image.shape[:2]
    if kind == "still":
        return np.repeat(image[None], k, 0)
    h, w = D.even_size(H * 0.875), D.even_size(W * 0.875)
    y0, x0 = int(rng.integers(0, H - h - 2)), int(rng.integers(0, W - w - 2))
    if kind == "noise":
        base = image[y0:y0 + h, x0:x0 + w].astype(np.float32)
        sigma = rng.uniform(0.5, 2.5)
        return np.stack([np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).round().astype(np.uint8)
                         for _ in range(k)])
    if kind == "vibration":
        offs = rng.integers(0, 2, size=(k, 2))
        return np.stack([image[y0 + dy:y0 + dy + h, x0 + dx:x0 + dx + w] for dy, dx in offs])
    if kind == "partial":
        frames = np.repeat(image[y0:y0 + h, x0:x0 + w][None], k, 0).copy()
        rh, rw = h // 2, w // 2
        ry, rx = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
        vy, vx = int(rng.integers(-3, 4)), int(rng.integers(1, 4))
        for i in range(k):
            sy = int(np.clip(y0 + ry + vy * i, 0, H - rh))
            sx = int(np.clip(x0 + rx + vx * i, 0, W - rw))
            frames[i, ry:ry + rh, rx:rx + rw] = image[sy:sy + rh, sx:sx + rw]
        return frames
    raise ValueError(f"unknown static kind {kind!r}")


def image_rows(image: np.ndarray, mos: float, sampling: SamplingConfig, seed: int) -> list[Row]:
    """Every row of one training image; a function of ``(image, mos, seed)`` only."""
    rng = np.random.default_rng([seed, 7])
    g = make_group(image, mos, replace(sampling, segment_seconds=0.0), seed, temporal_levels=2)
    rows = []
    for r in range(g.fragments.shape[0]):
        cls = _v6_class(g.attribution[r], g.distortion)
        sev = _sev(cls, float(g.severity[r].max())) if cls > 0 else np.zeros(len(DISTORTIONS_V6), np.float32)
        role = "pristine" if r == 0 else ("ladder" if g.kind == "spatial" else "temporal")
        rows.append(Row(g.fragments[r], g.global_view[r], role, g.distortion, int(g.levels[r]) if r else 0,
                        mos if r == 0 else float("nan"), cls, sev, bool(g.severity_mask[r]) and r > 0))
    k = sampling.frames_per_segment
    clip = D.make_clip_from_image(image, 16, "pan", seed=int(rng.integers(2 ** 31)))
    vseed = int(rng.integers(2 ** 31))
    if rng.random() < P_MILD:
        a, b = sorted(rng.choice(MILD_CRF, size=2, replace=False).tolist())
        comp = ATTRIBUTION_CLASSES_V6.index("compression")
        src = np.arange(6, 6 + k)
        f0, g0 = _segment_views(clip[src], sampling, vseed)
        rows.append(Row(f0, g0, "codec", "mild_x264", 0, mos, 0, _sev(0, 0), True))
        for level, crf in ((1, a), (2, b)):
            f, gv = _segment_views(D.encode_decode(clip, "x264", crf)[src], sampling, vseed)
            rows.append(Row(f, gv, "codec", "mild_x264", level, float("nan"), comp, _sev(0, 0), False))
    u = rng.random()
    if u < P_STATIC:
        kind = STATIC_KINDS[int(rng.integers(len(STATIC_KINDS)))]
        f, gv = _segment_views(static_segment(image, kind, k, rng), sampling, vseed)
        rows.append(Row(f, gv, "static", kind, 0, mos, 0, _sev(0, 0), True))
    elif u < P_STATIC + P_BLACK:
        black = np.full((k, *clip.shape[1:]), int(rng.integers(0, 8)), np.uint8)
        cls = ATTRIBUTION_CLASSES_V6.index("black")
        f, gv = _segment_views(black, sampling, vseed)
        rows.append(Row(f, gv, "black", "black", 0, 1.0, cls, _sev(cls, 1.0), True))
    rows.append(whole_image_row(image, mos, sampling, seed))
    return rows


def whole_image_row(image: np.ndarray, mos: float, sampling: SamplingConfig, seed: int) -> Row:
    """The whole ``(H, W, 3)`` uint8 image as a still segment (its frames identical), labelled with
    the image MOS and "none": the stimulus people rated, as an image file reaches the model. Drawn
    from a random stream of its own, so the other rows of the image do not depend on it."""
    rng = np.random.default_rng([seed, 11])
    vseed = int(rng.integers(2 ** 31))
    f, gv = _segment_views(static_segment(image, "still", sampling.frames_per_segment, rng), sampling, vseed)
    return Row(f, gv, "static", WHOLE, 0, mos, 0, _sev(0, 0), True)
