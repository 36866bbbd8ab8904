"""Evaluation of a head on held-out images, through the same scorer users call.

Clips are made from validation images with a seeded pan (16 frames, 448x448 from 512x512) and
scored by :class:`~vqametric.backends.fast.FastScorer` with the head's own sampling (segments and
frames per segment), i.e. exactly the inference path; with an ``.onnx`` path that is the shipped ONNX file.

* ``quality``: SRCC / PLCC (after the 4-parameter logistic fit) / KRCC against ``1 + 4 * MOS``;
  for BIQ2021 also per subset (``ss01``, ``ss02``, ``ss03``): SRCC, MOS mean and spread, and the
  mean prediction (a subset scored too high or too low as a whole shows there), and, as a
  diagnostic that uses the MOS, the pooled SRCC with each subset's mean offset removed;
* ``ladders``: per ladder of :data:`~vqametric.train.fast.distortions.LADDERS`, the mean over images of
  Kendall tau between severity level (0 = pristine, 1..5) and *minus* the score (1 = the score falls
  strictly with every level); with the colour ladder, the same for each colour mode forced on
  every image (desaturate, saturate, tint); optionally the SRCC between score and VMAF on the
  compression and scaling ladders; ``ladders_resampled``: the spatial ladders again from images
  shrunk by :data:`GRID_FREE_FACTOR`, pristine sources without the JPEG block grid;
* ``scene``: every ladder on the generated demo scene, a clip with no JPEG history, and the
  levels that do not score below its pristine clip;
* ``temporal``: per VQAThinker perturbation, the fraction of images whose original clip scores
  strictly above its perturbed copy, and above it by at least 0.1.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np
import torch

from ...backends import build_scorer
from ...demo import scene_frames
from ...registry import ModelCard, card_from_weights
from . import distortions as D
from .data import CLIP_FRAMES, ImageItem, load_image
from ..metrics import correlation_report, kendall_tau, srcc
from ..vmaf import vmaf as vmaf_of

TRAINED_PERTURBATIONS = tuple(k for k in D.TEMPORAL_PERTURBATIONS if k != "reverse")


def make_scorer(model: Any, runtime: str | None = None):
    """A scorer for a weights path (ONNX or safetensors) or an in-memory :class:`FastHead`."""
    if isinstance(model, (str, os.PathLike)):
        return build_scorer(card_from_weights(model), runtime=runtime)
    card = ModelCard(name="in-training", backend="fast-head", description="head being trained",
                     sampling=model.sampling_config(), default_runtime="torch")
    return build_scorer(card, head=model.eval())


def score_clips(scorer, clips: Sequence[np.ndarray], chunk: int = 16) -> np.ndarray:
    """Clip-level scores (mean over the planned segments), ``chunk`` clips per head forward."""
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), chunk):
            scores, _ = scorer.score(list(clips[i:i + chunk]))
            out.append(scores.detach().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def eval_clip(item_index: int, image: np.ndarray, seed: int = 0) -> np.ndarray:
    """The evaluation clip of an image: a pan seeded by ``(seed, item_index)``."""
    return D.make_clip_from_image(image, CLIP_FRAMES, "pan", seed=int(np.random.default_rng([seed, item_index])
                                                                       .integers(2 ** 31)))


def spread_subset(items: Sequence[ImageItem], n: int | None) -> list[ImageItem]:
    """``n`` items drawn with a fixed permutation (``default_rng(12345)``), in item order.

    Validation items are in name order, which groups BIQ2021's three subsets (ss01, ss02, ss03);
    taking the first ``n`` would evaluate on one subset only."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    keep = np.sort(np.random.default_rng(12345).permutation(len(items))[:n])
    return [items[i] for i in keep]


def evaluate_quality(scorer, items: Sequence[ImageItem], seed: int = 0) -> dict[str, Any]:
    clips, mos, preds = [], [], []
    for i, it in enumerate(items):
        clips.append(eval_clip(i, load_image(it.path), seed))
        mos.append(it.mos)
        if len(clips) == 32:
            preds.append(score_clips(scorer, clips))
            clips = []
    if clips:
        preds.append(score_clips(scorer, clips))
    pred = np.concatenate(preds)
    rep = correlation_report(pred, mos)
    rep.update(pred_mean=float(pred.mean()), pred_std=float(pred.std()), mos_mean=float(np.mean(mos)),
               mos_std=float(np.std(mos)))
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.name.split(" ")[0], []).append(i)
    if len(groups) > 1:      # BIQ2021 names start with their subset: ss01, ss02, ss03
        m = np.asarray(mos)
        subsets = {g: ix for g, ix in sorted(groups.items()) if len(ix) >= 20}
        rep["by_subset"] = {g: {"srcc": srcc(pred[ix], m[ix]), "n": len(ix), "mos_mean": float(m[ix].mean()),
                                "mos_std": float(m[ix].std()), "pred_mean": float(pred[ix].mean())}
                            for g, ix in subsets.items()}
        if len(subsets) > 1:
            # diagnostic, not a result (it uses the MOS): the pooled SRCC once each reported subset's
            # predictions are shifted so that their mean equals its mean MOS (smaller groups stay as
            # they are: shifting a group of one would hand it its MOS); the gap to "srcc" is what the
            # offsets between subsets cost
            shifted = pred.astype(np.float64)
            for ix in subsets.values():
                shifted[ix] += m[ix].mean() - shifted[ix].mean()
            rep["srcc_subset_offsets_removed"] = srcc(shifted, m)
    return rep


GRID_FREE_FACTOR = 0.7   # evaluate() shrinks images by this for the grid-free ladders

VMAF_LADDERS = ("x264", "x265", "av1", "scaling")


def evaluate_ladders(scorer, items: Sequence[ImageItem], ladders: Sequence[str] = tuple(D.LADDERS),
                     seed: int = 0, vmaf: bool = False, resample: float | None = None) -> dict[str, Any]:
    """Kendall tau between level and score per ladder (with the share of images whose score falls
    strictly at every level, and the mean score at levels 0-5); with ``vmaf=True`` also, for the
    compression and scaling ladders (:data:`VMAF_LADDERS`), the agreement between the head's score
    and VMAF against the pristine clip: SRCC over all (image, level 1-5) pairs, and the mean
    over images of the SRCC along each image's ladder. With ``"colour"`` among ``ladders``,
    ``colour_modes`` holds the tau and mean score by level of each colour mode
    (:data:`~vqametric.train.fast.distortions.COLOUR_MODES`) forced on every image (the colour ladder
    itself draws one mode per image). ``resample``: shrink each image by this factor first
    (:func:`~vqametric.train.fast.distortions.downsample_image`): ladders from pristine sources without
    the JPEG block grid every BIQ2021 photo carries."""
    # one row per image: the head's scores at levels 0-5 (pristine first); tau and the rest derive from them
    by_level: dict[str, list[np.ndarray]] = {name: [] for name in ladders}
    modes = D.COLOUR_MODES if "colour" in ladders else ()
    mode_scores: dict[str, list[np.ndarray]] = {m: [] for m in modes}
    vmaf_names = [n for n in ladders if n in VMAF_LADDERS] if vmaf else []
    level_vmaf: dict[str, list[list[float]]] = {n: [] for n in vmaf_names}     # VMAF at levels 1-5
    for i, it in enumerate(items):
        image = load_image(it.path)
        clip = eval_clip(i, D.downsample_image(image, resample) if resample else image, seed)
        for name in ladders:
            degraded = [D.degrade(clip, name, lv, seed=seed + i) for lv in D.LEVELS]
            by_level[name].append(score_clips(scorer, [clip] + degraded))
            if name in level_vmaf:
                level_vmaf[name].append([vmaf_of(clip, d) for d in degraded])
        for m in modes:
            mode_scores[m].append(score_clips(scorer, [clip] + [D.colour(clip, lv, seed=seed + i, mode=m)
                                                                for lv in D.LEVELS]))
    per = {name: {**_ladder_summary(rows),
                  "strictly_decreasing": float(np.mean(np.all(np.diff(rows, axis=1) < 0, axis=1)))}
           for name, rows in by_level.items()}
    spatial = [per[n]["tau"] for n in ladders if n in D.SPATIAL_LADDERS]
    temporal = [per[n]["tau"] for n in ladders if n in D.TEMPORAL_LADDERS]
    out = {"per_ladder": per, "mean_tau": float(np.mean([p["tau"] for p in per.values()])),
           "mean_tau_spatial": float(np.mean(spatial)) if spatial else None,
           "mean_tau_temporal": float(np.mean(temporal)) if temporal else None, "images": len(items),
           "resample": resample}
    if modes:
        out["colour_modes"] = {m: _ladder_summary(rows) for m, rows in mode_scores.items()}
    if vmaf_names:
        out["vmaf_agreement"] = {}
        for n in vmaf_names:
            sc, vm = np.asarray(by_level[n])[:, 1:], np.asarray(level_vmaf[n])     # (images, 5)
            out["vmaf_agreement"][n] = {
                "srcc_pooled": srcc(sc.ravel(), vm.ravel()),
                "srcc_within_image_mean": float(np.nanmean([srcc(a, b) for a, b in zip(sc, vm)])),
                "vmaf_mean_by_level": [round(float(x), 2) for x in vm.mean(0)], "pairs": int(vm.size)}
    return out


def _ladder_tau(scores: np.ndarray) -> float:
    """One image's scores at levels 0-5 -> Kendall tau between level and minus the score (1: the
    score falls at every level)."""
    return kendall_tau(np.arange(len(scores)), -np.asarray(scores))


def _ladder_summary(rows: Sequence[np.ndarray]) -> dict[str, Any]:
    """Scores ``(images, 6)`` at levels 0-5 -> mean :func:`_ladder_tau`, and the mean score at
    each level."""
    return {"tau": float(np.mean([_ladder_tau(r) for r in rows])),
            "mean_score_by_level": [float(x) for x in np.mean(rows, 0)]}


def evaluate_scene(scorer, ladders: Sequence[str] = tuple(D.LADDERS), seed: int = 0) -> dict[str, Any]:
    """Every ladder on the generated demo scene (:func:`vqametric.demo.scene_frames`, 16 frames at
    360x640): content with no JPEG history, unlike every BIQ2021 photo. Per ladder the scores at
    levels 0-5 and Kendall tau as in :func:`evaluate_ladders`; ``not_below_pristine`` lists the
    ``(ladder, level)`` pairs whose score is not below the pristine clip's (the promise "a pristine
    clip above its degraded copies" wants none)."""
    scene = np.stack(list(scene_frames(16, 360, 640)))
    pristine = float(score_clips(scorer, [scene])[0])
    per, worse = {}, []
    for name in ladders:
        s = score_clips(scorer, [D.degrade(scene, name, lv, seed=seed) for lv in D.LEVELS])
        rows = np.concatenate([[pristine], s])
        per[name] = {"tau": _ladder_tau(rows), "scores": [float(x) for x in rows]}
        worse += [[name, lv] for lv, v in zip(D.LEVELS, s) if v >= pristine]
    return {"pristine": pristine, "per_ladder": per, "mean_tau": float(np.mean([p["tau"] for p in per.values()])),
            "not_below_pristine": worse, "pairs": len(ladders) * len(D.LEVELS)}


TEMPORAL_MARGIN = 0.1   # MOS units: a win by at least this much is a clear preference


def evaluate_temporal(scorer, items: Sequence[ImageItem], seed: int = 0) -> dict[str, Any]:
    """Per VQAThinker perturbation, the share of images whose original clip scores strictly above
    its perturbed copy (``consistency``), the share where it wins by at least
    :data:`TEMPORAL_MARGIN` (``consistency_margin``; an untrained head's wins are tiny) and the
    mean gap."""
    gaps: dict[str, list[float]] = {k: [] for k in D.TEMPORAL_PERTURBATIONS}     # original - perturbed
    for i, it in enumerate(items):
        clip = eval_clip(i, load_image(it.path), seed)
        clips = [clip] + [D.temporal_perturbation(clip, k, seed=seed * 7919 + i) for k in D.TEMPORAL_PERTURBATIONS]
        s = score_clips(scorer, clips)
        for k, v in zip(D.TEMPORAL_PERTURBATIONS, s[1:]):
            gaps[k].append(float(s[0] - v))
    per = {k: {"consistency": float(np.mean(np.asarray(g) > 0)),
               "consistency_margin": float(np.mean(np.asarray(g) >= TEMPORAL_MARGIN)),
               "mean_gap": float(np.mean(g))} for k, g in gaps.items()}
    return {"per_perturbation": per,
            "consistency_all": float(np.mean([per[k]["consistency"] for k in D.TEMPORAL_PERTURBATIONS])),
            "consistency_without_reverse": float(np.mean([per[k]["consistency"] for k in TRAINED_PERTURBATIONS])),
            "consistency_margin_without_reverse": float(np.mean([per[k]["consistency_margin"]
                                                                 for k in TRAINED_PERTURBATIONS])),
            "margin": TEMPORAL_MARGIN, "images": len(items)}


def evaluate(model: Any, val_items: Sequence[ImageItem], n_quality: int | None = None, n_ladder: int = 24,
             n_temporal: int = 100, seed: int = 0, runtime: str | None = None,
             ladders: Sequence[str] | None = None, vmaf: bool = False,
             n_ladder_resampled: int = 0, scene: bool = False) -> dict[str, Any]:
    """The evaluations on (subsets of) the validation items. ``n_quality=None``: all of them.
    Subsets are :func:`spread_subset` (a fixed permutation, independent of ``seed``). ``vmaf``:
    also report agreement with VMAF on the compression and scaling ladders.
    ``n_ladder_resampled``: also the spatial ladders (of ``ladders``) on that many images shrunk by
    :data:`GRID_FREE_FACTOR` (``ladders_resampled``): the same ladders from grid-free sources.
    ``scene``: also every ladder on the generated demo scene (``scene``, :func:`evaluate_scene`)."""
    scorer = make_scorer(model, runtime)
    names = tuple(ladders or D.LADDERS)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"quality": evaluate_quality(scorer, spread_subset(val_items, n_quality), seed)}
    if n_ladder:
        out["ladders"] = evaluate_ladders(scorer, spread_subset(val_items, n_ladder), names, seed=seed, vmaf=vmaf)
    spatial = tuple(n for n in names if n in D.SPATIAL_LADDERS)
    if n_ladder_resampled and spatial:
        out["ladders_resampled"] = evaluate_ladders(scorer, spread_subset(val_items, n_ladder_resampled), spatial,
                                                    seed=seed, resample=GRID_FREE_FACTOR)
    if scene:
        out["scene"] = evaluate_scene(scorer, names, seed=seed)
    if n_temporal:
        out["temporal"] = evaluate_temporal(scorer, spread_subset(val_items, n_temporal), seed=seed)
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out
