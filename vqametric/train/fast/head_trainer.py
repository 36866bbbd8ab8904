"""The compact head's recipe: ``vqametric train head --data DIR --out DIR`` (the module entry
point ``python -m vqametric.train.fast.head_trainer`` is an alias). The settings are
:class:`~vqametric.train.fast.head_config.HeadTrainConfig`: options, ``--config FILE`` and
``--set KEY=VALUE``.

Trains :class:`~vqametric.backends.head.FastHead` from scratch on the CPU on BIQ2021's train CSV
(split 90/10 with a fixed seed) and on synthetic spatial ladders and temporal perturbations around
it (:mod:`vqametric.train.fast.data`), then writes into ``--out``:

* ``head.safetensors`` and ``head.onnx`` (name ``vqametric-fast``, ``--version``), both with the
  head and sampling configuration in their metadata;
* ``metrics.json``: the validation numbers of the exported ONNX file (:mod:`.evaluate`), the
  configuration, timings, file sizes;
* ``train_log.jsonl``: one line of losses every ``--log-every`` steps (plus quick validation
  SRCC and temporal consistency every ``--val-every`` steps; for the log only, no checkpoint is
  selected on it).

Loss per step: regression on the pristine segments (bell-shaped, sigma 0.5, plus 0.2 x smooth L1
so that far-off predictions still get a gradient), Thurstone fidelity ranking across the batch's
pristine segments, fidelity ranking along each spatial ladder (pristine > level a > level b) and
between two levels of a temporal ladder (``--temporal-levels 2``),
a temporal-consistency margin (pristine > perturbed by ``--margin``), attribution cross-entropy
and severity BCE. Everything is seeded; batch ``i`` depends only on ``(--seed, i)``.
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ... import __version__
from ...backends.head import FastHead, HeadConfig, load_head, load_trainable_head, save_head
from ...backends.onnx_runtime import export_onnx
from .. import cli as train_cli
from .. import vmaf
from ..config import Job, Override, load
from ..options import command_line
from . import losses as L
from .data import GroupBatches, ImageItem, items_from_images, read_biq2021_train, split_train_val
from .evaluate import evaluate, evaluate_quality, evaluate_temporal, make_scorer, spread_subset
from .head_config import HeadTrainConfig

MODEL_NAME = "vqametric-fast"

LOSS_WEIGHTS = {"regression": 1.0, "batch_rank": 1.0, "ladder_rank": 1.0, "temporal": 1.0, "attribution": 0.2,
                "severity": 0.2}
PLACEHOLDERS = {"data": "DATA", "out": "OUT"}    # the folders, as metrics.json's command shows them


def parse_args(argv: Sequence[str]) -> HeadTrainConfig:
    """The config of a ``vqametric train head`` command line (``argv`` without the mode): argparse
    exits on a bad option value; a bad config raises :class:`~vqametric.train.config.TrainConfigError`."""
    args = train_cli.build_parser().parse_args(["head", *argv])
    return load_head_config(args.config, train_cli.overrides(args))


def load_head_config(path: str | None, overrides: Sequence[Override] = ()) -> HeadTrainConfig:
    """The recipe's config from the file ``path`` (optional) and ``overrides``."""
    return load(HeadTrainConfig, path, overrides)


ARCH_OPTIONS = {"arch": "--arch", "width": "--width", "spatial_stride": "--spatial-stride"}


def initial_head(cfg: HeadTrainConfig) -> FastHead:
    """The head training starts from: new (``--arch``, ``--width``, ``--spatial-stride``; those not
    given keep :class:`HeadConfig`'s defaults) or the ``--init`` head, whose architecture options
    must not be contradicted. Fills those three keys of ``cfg`` with the architecture used."""
    given = {k: getattr(cfg, k) for k in ARCH_OPTIONS if getattr(cfg, k) is not None}
    if cfg.init:
        head, meta = load_trainable_head(cfg.init)
        cfg.init_model = f"{meta.get('name', '?')} {meta.get('version', '?')}"   # recorded in metrics.json
        clash = {k: v for k, v in given.items() if v != getattr(head.config, k)}
        if clash:
            said = ", ".join(f"{ARCH_OPTIONS[k]} {v} (it has {getattr(head.config, k)})" for k, v in clash.items())
            raise ValueError(f"--init {cfg.init} has another architecture than {said}; leave "
                             f"{' and '.join(ARCH_OPTIONS[k] for k in clash)} out (the head's own architecture "
                             "is used)")
    else:
        head = FastHead(HeadConfig(**given))
    record_architecture(cfg, head.config)
    return head.train()


def record_architecture(cfg: HeadTrainConfig, config: HeadConfig) -> None:
    """Set ``cfg``'s architecture keys to ``config``'s (what ``metrics.json`` records)."""
    for k in ARCH_OPTIONS:
        setattr(cfg, k, getattr(config, k))


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def compute_losses(out: dict[str, torch.Tensor], batch, margin: float) -> dict[str, torch.Tensor]:
    s = out["score"]
    pr = s[batch.pristine_rows]
    res = {"regression": L.bell_loss(pr, batch.mos, 0.5) + 0.2 * L.smooth_l1(pr, batch.mos),
           "batch_rank": L.batch_fidelity_loss(pr, batch.mos)}
    op, tp = batch.ordered_pairs, batch.temporal_pairs
    res["ladder_rank"] = L.ordered_fidelity_loss(s[op[:, 0]], s[op[:, 1]]) if len(op) else s.sum() * 0
    res["temporal"] = L.margin_loss(s[tp[:, 0]], s[tp[:, 1]], margin) if len(tp) else s.sum() * 0
    res["attribution"] = L.attribution_loss(out["attribution"], batch.attribution)
    res["severity"] = L.severity_loss(out["severity"], batch.severity, batch.severity_mask)
    res["total"] = sum(LOSS_WEIGHTS[k] * v for k, v in res.items())
    return res


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the data workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_split(cfg: HeadTrainConfig) -> tuple[list[ImageItem], list[ImageItem]]:
    """The train and validation images (``--items-from-folder``: every image of a folder, MOS 3)."""
    items = items_from_images(cfg.data) if cfg.items_from_folder else read_biq2021_train(cfg.data)
    train_items, val_items = split_train_val(items, cfg.val_fraction, cfg.split_seed)
    if cfg.limit_train:
        train_items = train_items[:cfg.limit_train]
    return train_items, val_items


def _quick_validation(head: FastHead, val_items: list[ImageItem], cfg: HeadTrainConfig) -> dict[str, Any]:
    """SRCC, PLCC and temporal consistency on a spread of validation images, for the log only (a
    failure is logged, never ends the run)."""
    try:
        scorer = make_scorer(head)
        q = evaluate_quality(scorer, spread_subset(val_items, cfg.val_quick), seed=cfg.seed)
        tc = evaluate_temporal(scorer, spread_subset(val_items, cfg.val_quick // 4), seed=cfg.seed)
        return {"srcc": round(q["srcc"], 4), "plcc": q["plcc"] and round(q["plcc"], 4), "n": q["n"],
                "temporal": round(tc["consistency_without_reverse"], 4), "n_temporal": tc["images"]}
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        head.train()


def _fit(head: FastHead, cfg: HeadTrainConfig, train_items: list[ImageItem], val_items: list[ImageItem],
         echo: Callable[[str], None] | None) -> None:
    """The optimisation loop: ``cfg.steps`` AdamW steps (warmup, then cosine), losses logged to
    ``train_log.jsonl`` every ``log_every`` steps, a checkpoint every 200 steps."""
    sampling = head.sampling_config()
    data = GroupBatches(train_items, sampling, cfg.steps, cfg.groups, seed=cfg.seed, image_groups=cfg.image_groups,
                        p_temporal=cfg.p_temporal, temporal_levels=cfg.temporal_levels,
                        spatial_weights=cfg.spatial_weights, p_resample=cfg.p_resample,
                        p_resample_images=cfg.p_resample_images)
    # spawned workers, as every pool of the package: a forked one inherits the parent's threads
    # (ONNX Runtime's, a Ray client's ...) and can hang on their locks
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=cfg.workers,
                                         prefetch_factor=2 if cfg.workers else None,
                                         multiprocessing_context="spawn" if cfg.workers else None)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    running: dict[str, float] = {}
    head.train()
    t_loop = time.perf_counter()
    with open(os.path.join(cfg.out, "train_log.jsonl"), "w") as log:
        for step, batch in loader:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
            out = head(batch.fragments, batch.global_view)
            parts = compute_losses(out, batch, cfg.margin)
            opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
            opt.step()
            for k, v in parts.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                n = cfg.log_every if done % cfg.log_every == 0 else done % cfg.log_every
                rec = {"step": done, "lr": opt.param_groups[0]["lr"], "segments": int(batch.fragments.shape[0]),
                       "elapsed_s": round(time.perf_counter() - t_loop, 1),
                       **{k: round(v / n, 5) for k, v in running.items()}}
                running = {}
                if cfg.val_every and done % cfg.val_every == 0 and done < cfg.steps:
                    rec["val_quick"] = _quick_validation(head, val_items, cfg)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if echo:
                    echo(json.dumps(rec))
            if done % 200 == 0:
                save_head(head.eval(), os.path.join(cfg.out, "checkpoint.safetensors"), sampling, name=MODEL_NAME,
                          version=f"{cfg.version}-step{done}")
                head.train()


def train(cfg: HeadTrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train, export and evaluate (see the module docstring); returns what ``metrics.json`` holds.
    ``echo`` takes each line of the training log."""
    command = command_line(cfg, "vqametric train head", PLACEHOLDERS)
    if cfg.vmaf and cfg.eval_ladder:
        vmaf.ffmpeg_with_vmaf()         # before training rather than after it: fails at once without one
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    head = initial_head(cfg)      # before anything is read or written: a bad --init fails at once
    os.makedirs(cfg.out, exist_ok=True)
    train_items, val_items = load_split(cfg)
    t_loop = time.perf_counter()
    _fit(head, cfg, train_items, val_items, echo)
    train_seconds = time.perf_counter() - t_loop

    head.eval()
    sampling = head.sampling_config()
    save_head(head, os.path.join(cfg.out, "head.safetensors"), sampling, name=MODEL_NAME, version=cfg.version)
    export_onnx(head, os.path.join(cfg.out, "head.onnx"), sampling, name=MODEL_NAME, version=cfg.version)
    ckpt = os.path.join(cfg.out, "checkpoint.safetensors")
    if os.path.exists(ckpt):
        os.remove(ckpt)
    return finish(cfg, train_items, val_items, train_seconds, t_start, cpu_start, command)


def finish(cfg: HeadTrainConfig, train_items: list[ImageItem], val_items: list[ImageItem],
           train_seconds: float | None, t_start: float, cpu_start: float, command: str) -> dict[str, Any]:
    """Evaluate ``out``/head.onnx on the validation split and write ``metrics.json``."""
    st_path = os.path.join(cfg.out, "head.safetensors")
    onnx_path = os.path.join(cfg.out, "head.onnx")
    head, _ = load_head(st_path)
    record_architecture(cfg, head.config)     # the evaluated head's, also with --evaluate-only
    t_eval = time.perf_counter()
    ladders = None if cfg.ladders == "all" else tuple(x.strip() for x in cfg.ladders.split(",") if x.strip())
    metrics = evaluate(onnx_path, val_items, n_quality=cfg.eval_quality or None, n_ladder=cfg.eval_ladder,
                       n_temporal=cfg.eval_temporal, seed=cfg.seed, ladders=ladders, vmaf=cfg.vmaf,
                       n_ladder_resampled=cfg.eval_ladder_resampled, scene=cfg.eval_scene)
    eval_seconds = time.perf_counter() - t_eval
    result = {
        "model": MODEL_NAME, "version": cfg.version, "vqametric": __version__,
        "evaluated_file": "head.onnx", "split": {"train": len(train_items), "validation": len(val_items),
                                                  "seed": cfg.split_seed, "fraction": cfg.val_fraction},
        "validation": metrics,
        "files": {"head.onnx": os.path.getsize(onnx_path), "head.safetensors": os.path.getsize(st_path)},
        "parameters": sum(p.numel() for p in head.parameters()),
        "timing": {"train_wall_s": None if train_seconds is None else round(train_seconds, 1),
                   "eval_wall_s": round(eval_seconds, 1),
                   "total_wall_s": round(time.perf_counter() - t_start, 1),
                   "cpu_s": round(_cpu_seconds() - cpu_start, 1), "threads": cfg.threads, "workers": cfg.workers,
                   "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine()},
        "config": cfg.recorded(),
        "loss_weights": LOSS_WEIGHTS,
        "command": command,
        "software": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(cfg.out, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def run(cfg: HeadTrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``vqametric train head``: train (or with ``evaluate_only`` only evaluate) and return the
    headline numbers: SRCC, PLCC, ladder tau, temporal consistency, ONNX size, training time."""
    if cfg.evaluate_only:
        command = command_line(cfg, "vqametric train head", PLACEHOLDERS)
        train_items, val_items = load_split(cfg)
        result = finish(cfg, train_items, val_items, None, time.perf_counter(), _cpu_seconds(), command)
    else:
        result = train(cfg, echo)
    v = result["validation"]
    return {"output": cfg.out, "srcc": v["quality"]["srcc"], "plcc": v["quality"]["plcc"],
            "ladder_tau": v.get("ladders", {}).get("mean_tau"),
            "temporal_consistency": v.get("temporal", {}).get("consistency_all"),
            "onnx_bytes": result["files"]["head.onnx"], "train_wall_s": result["timing"]["train_wall_s"]}


def preflight(cfg: HeadTrainConfig) -> dict[str, Any]:
    """Nothing to check before training beyond the config: the data is read when training starts."""
    return {}


JOB = Job(load_head_config, preflight, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vqametric.train.fast.head_trainer ARGS``: the same as ``vqametric train head ARGS``."""
    return train_cli.main(["head", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
