"""The fast model's goals measured through the path users call: files in, :func:`vqametric.score` out.

``python -m vqametric.train.fast.user_eval --data BIQ2021 --out user_eval.json [--model vqametric-fast]``

Every number comes from ``vqametric.score(path)`` on a file (the validation photos as they are,
and video files written with PyAV and x264), except attribution, which scores in-memory clips
through the same call. The validation split is the recipe's (seed 0, 1,000 images); the held-out
test CSV of BIQ2021 is never opened. Measured:

* ``images``: SRCC / PLCC (4-parameter logistic) of ``score(photo.jpg)`` against the MOS, and
  the same for the pan clip of each image (the recipe's evaluation clip), and their gap;
* ``crf_ladder``: x264 CRF 18 / 22 / 26 / 30 encodes of a 2 s pan (MP4): the share of sources
  scored strictly in that order;
* ``stills``: the photo file, a 3 s static shot of the whole photo with sensor noise (sigma 2)
  and a 3 s slow pan over it (1 px per frame, the widest window that fits: 438 px of 512): the
  share of sources whose three scores lie within 0.25, and the share of the three files called
  "stutter" or "freeze";
* ``defects``: a 10 s pan (12 fps) and copies with one second black, frozen or heavily blurred:
  the share of sources whose score drops by at least 0.5, per defect;
* ``attribution``: top-1 accuracy of ``dominant_distortion`` on single-distortion clips.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from ...demo import encode
from ...functional import score
from . import distortions as D
from .data import ImageItem, load_image, read_biq2021_train, split_train_val
from .evaluate import eval_clip, spread_subset
from ..metrics import correlation_report

WITHIN = 0.25          # still / static / pan agreement
DROP = 0.5             # a one-second defect must lower a 10 s clip by this much
CRFS = (18, 22, 26, 30)
ATTRIBUTION_CASES = {  # clip maker -> the class it should be attributed to
    "blur": ("blur", 4), "noise": ("noise", 4), "x264": ("compression", 5), "scaling": ("scaling", 4),
    "exposure": ("exposure", 4), "colour": ("colour", 5), "stutter": ("stutter", 3), "flicker": ("flicker", 4),
    "shake": ("shake", 4), "black": ("black", 0), "freeze": ("freeze", 5)}


def write_mp4(frames: np.ndarray, path: str, fps: int = 25, crf: int = 16) -> str:
    """RGB uint8 frames ``(T, H, W, 3)`` -> an x264 MP4 (medium preset, one thread, no AVX-512: the
    same file on every run, whatever the width)."""
    return encode(frames, path, crf=crf, fps=fps, preset="medium", threads=1, repeatable=True)


def pan(image: np.ndarray, n: int, height: int, width: int, step: int = 1, seed: int = 0) -> np.ndarray:
    """``n`` frames of a ``height x width`` window moving ``step`` px per frame across ``image``."""
    H, W = image.shape[:2]
    rng = np.random.default_rng(seed)
    travel = step * (n - 1)
    if travel > W - width:
        raise ValueError("the image is too narrow for this pan")
    y0 = int(rng.integers(0, H - height + 1))
    x0 = int(rng.integers(0, W - width - travel + 1))
    return np.stack([image[y0:y0 + height, x0 + step * i:x0 + step * i + width] for i in range(n)])


def _score(path_or_clip, model: str):
    return score(path_or_clip, model=model)


def eval_images(items: Sequence[ImageItem], model: str) -> dict[str, Any]:
    file_scores, pan_scores, mos = [], [], []
    for i, it in enumerate(items):
        file_scores.append(_score(it.path, model).score)
        pan_scores.append(_score(eval_clip(i, load_image(it.path)), model).score)
        mos.append(it.mos)
    files, pans = correlation_report(file_scores, mos), correlation_report(pan_scores, mos)
    return {"image_files": files, "pan_clips": pans, "srcc_gap": abs(files["srcc"] - pans["srcc"]),
            "images": len(items)}


def eval_crf_ladder(items: Sequence[ImageItem], model: str, folder: str) -> dict[str, Any]:
    rows = []
    for i, it in enumerate(items):
        clip = pan(load_image(it.path), 50, 432, 432, step=1, seed=i)
        rows.append([_score(write_mp4(clip, os.path.join(folder, f"crf{c}.mp4"), crf=c), model).score for c in CRFS])
    rows = np.asarray(rows)
    return {"strictly_decreasing": float(np.mean(np.all(np.diff(rows, axis=1) < 0, axis=1))),
            "mean_score_by_crf": dict(zip(map(str, CRFS), np.round(rows.mean(0), 4).tolist())), "sources": len(items)}


def eval_stills(items: Sequence[ImageItem], model: str, folder: str) -> dict[str, Any]:
    within, temporal_calls, spreads, means = [], 0, [], []
    for i, it in enumerate(items):
        image = load_image(it.path)
        rng = np.random.default_rng(i)
        base = image.astype(np.float32)
        static = np.stack([np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).round().astype(np.uint8)
                           for _ in range(75)])
        side = min(image.shape[:2]) - 74
        results = [_score(it.path, model),
                   _score(write_mp4(static, os.path.join(folder, "static.mp4")), model),
                   _score(write_mp4(pan(image, 75, side, side, seed=i), os.path.join(folder, "pan.mp4")), model)]
        s = [r.score for r in results]
        spreads.append(max(s) - min(s))
        means.append(s)
        within.append(max(s) - min(s) <= WITHIN)
        temporal_calls += sum(r.dominant_distortion in ("stutter", "freeze") for r in results)
    return {"within_0.25": float(np.mean(within)), "stutter_or_freeze_share": temporal_calls / (3 * len(items)),
            "median_spread": float(np.median(spreads)),
            "mean_scores": dict(zip(("image", "static", "pan"), np.round(np.mean(means, 0), 4).tolist())),
            "sources": len(items)}


def eval_defects(items: Sequence[ImageItem], model: str, folder: str, fps: int = 12) -> dict[str, Any]:
    drops: dict[str, list[float]] = {"black": [], "frozen": [], "blurred": []}
    for i, it in enumerate(items):
        clip = pan(load_image(it.path), 10 * fps, 288, 384, seed=i)
        start = int(np.random.default_rng(i).integers(2 * fps, 7 * fps))
        sec = slice(start, start + fps)
        base = _score(write_mp4(clip, os.path.join(folder, "clean.mp4"), fps=fps), model).score
        for name in drops:
            bad = clip.copy()
            if name == "black":
                bad[sec] = 0
            elif name == "frozen":
                bad[sec] = clip[start]
            else:
                bad[sec] = D.gaussian_blur(clip[sec], 5)
            drops[name].append(base - _score(write_mp4(bad, os.path.join(folder, f"{name}.mp4"), fps=fps), model).score)
    return {name: {"share_drop_0.5": float(np.mean(np.asarray(d) >= DROP)), "median_drop": float(np.median(d))}
            for name, d in drops.items()} | {"sources": len(items)}


def attribution_clip(clip: np.ndarray, case: str, seed: int) -> np.ndarray:
    """A single-distortion copy of ``clip`` for :data:`ATTRIBUTION_CASES`."""
    name, level = case, ATTRIBUTION_CASES[case][1]
    if name == "black":
        out = clip.copy()
        out[:] = 0
        return out
    if name == "exposure":
        return D.exposure(clip, level, seed=seed, direction="under")
    return D.degrade(clip, name, level, seed=seed)


def eval_attribution(items: Sequence[ImageItem], model: str) -> dict[str, Any]:
    hits: dict[str, list[bool]] = {c: [] for c in ATTRIBUTION_CASES}
    confusions: dict[str, dict[str, int]] = {c: {} for c in ATTRIBUTION_CASES}
    for i, it in enumerate(items):
        clip = eval_clip(i, load_image(it.path))
        for case, (cls, _) in ATTRIBUTION_CASES.items():
            got = _score(attribution_clip(clip, case, i), model).dominant_distortion
            hits[case].append(got == cls)
            confusions[case][got] = confusions[case].get(got, 0) + 1
    per = {c: float(np.mean(h)) for c, h in hits.items()}
    return {"top1": float(np.mean([x for h in hits.values() for x in h])), "per_distortion": per,
            "confusions": confusions, "sources": len(items)}


def run(data: str, model: str, n_images: int, n_sources: int, n_attribution: int) -> dict[str, Any]:
    _, val = split_train_val(read_biq2021_train(data))
    out: dict[str, Any] = {"model": model}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        out["images"] = eval_images(spread_subset(val, n_images), model)
        sources = spread_subset(val, n_sources)
        out["crf_ladder"] = eval_crf_ladder(sources, model, folder)
        out["stills"] = eval_stills(sources, model, folder)
        out["defects"] = eval_defects(sources, model, folder)
        out["attribution"] = eval_attribution(spread_subset(val, n_attribution), model)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vqametric.train.fast.user_eval", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="BIQ2021 folder")
    p.add_argument("--model", default="vqametric-fast", help="model name or head file")
    p.add_argument("--out", required=True, help="JSON report to write")
    p.add_argument("--images", type=int, default=1000, help="validation images for the SRCC")
    p.add_argument("--sources", type=int, default=60, help="validation images for the video checks")
    p.add_argument("--attribution", type=int, default=40, help="validation images for attribution")
    args = p.parse_args(argv)
    rep = run(args.data, args.model, args.images, args.sources, args.attribution)
    rep["command"] = "python -m vqametric.train.fast.user_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(args.out, "w") as f:
        json.dump(rep, f, indent=2)
    print(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
