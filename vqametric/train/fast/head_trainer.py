"""The fast-head recipe: ``python -m vqametric.train.fast.head_trainer --data DIR --out DIR``.

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

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np
import torch

from ... import __version__
from ...backends.head import ARCH, SUPPORTED_ARCHS, FastHead, HeadConfig, load_trainable_head, save_head
from . import losses as L
from .data import GroupBatches, ImageItem, read_biq2021_train, split_train_val

MODEL_NAME = "vqametric-fast"

LOSS_WEIGHTS = {"regression": 1.0, "batch_rank": 1.0, "ladder_rank": 1.0, "temporal": 1.0, "attribution": 0.2,
                "severity": 0.2}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vqametric.train.fast.head_trainer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="BIQ2021 folder (holds Images/ and 'Train (Images and MOS).csv')")
    p.add_argument("--out", required=True, help="output folder for weights, metrics and logs")
    p.add_argument("--steps", type=int, default=2400, help="optimizer steps")
    p.add_argument("--groups", type=int, default=8, help="images per step (each gives 2-3 segments)")
    p.add_argument("--image-groups", type=int, default=8,
                   help="extra images per step seen only as their pristine segment (opinion-score losses only)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (warmup, then cosine)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    p.add_argument("--init", default=None,
                   help="fine-tune this head instead of a new one: a .safetensors head or a fast model name "
                        "(e.g. vqametric-fast); its architecture is used (use a lower --lr, e.g. 5e-4)")
    p.add_argument("--width", type=positive_int, default=None,
                   help=f"HeadConfig.width (default: {HeadConfig.width}, or the --init head's)")
    p.add_argument("--spatial-stride", type=positive_int, default=None,
                   help="HeadConfig.spatial_stride: the spatial CNNs see frames 0, s, 2s, ... of each segment "
                        f"(default: {HeadConfig.spatial_stride}, or the --init head's)")
    p.add_argument("--arch", type=int, choices=[a for a in SUPPORTED_ARCHS if a != 6], default=None,
                   help="head architecture (HeadConfig.arch): 4 adds blockiness and still-step statistics, "
                        f"5 the still step only (default: {ARCH}, or the --init head's)")
    p.add_argument("--margin", type=float, default=0.25, help="temporal consistency margin (MOS units)")
    p.add_argument("--p-temporal", type=float, default=0.4, help="share of groups with a temporal perturbation")
    p.add_argument("--temporal-levels", type=int, choices=(1, 2), default=2,
                   help="perturbed rows per temporal-ladder group: 2 also ranks a milder level above a worse one")
    p.add_argument("--spatial-weights", type=parse_weights, default="exposure=1,colour=1",
                   help="sampling weights of spatial ladders, NAME=W,... (others keep data.SPATIAL_WEIGHTS)")
    p.add_argument("--p-resample", type=probability, default=0.0,
                   help="share of ladder groups whose image is first shrunk (by data.RESAMPLE_RANGE) into a "
                        "pristine source without the JPEG block grid")
    p.add_argument("--p-resample-images", type=probability, default=0.0,
                   help="the same for the opinion-only images (their MOS then labels the shrunk image)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 90/10 train/validation split")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--workers", type=int, default=1, help="data-generation worker processes (0: in-process)")
    p.add_argument("--version", default="0.5.0", help="version string stored in the weights")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--val-every", type=int, default=500, help="quick validation SRCC and temporal consistency every N steps (0: never)")
    p.add_argument("--val-quick", type=int, default=150,
                   help="validation images of the quick check (a quarter of them for temporal consistency)")
    p.add_argument("--eval-quality", type=int, default=0, help="validation images for SRCC/PLCC (0: all)")
    p.add_argument("--eval-ladder", type=int, default=24, help="validation images for the ladder taus")
    p.add_argument("--eval-ladder-resampled", type=int, default=12,
                   help="validation images for the spatial ladders from grid-free (shrunk) sources")
    p.add_argument("--no-eval-scene", dest="eval_scene", action="store_false",
                   help="skip the ladders on the generated demo scene (content with no JPEG history)")
    p.add_argument("--eval-temporal", type=int, default=100, help="validation images for temporal consistency")
    p.add_argument("--no-vmaf", dest="vmaf", action="store_false",
                   help="skip the VMAF agreement on the compression and scaling ladders (needs imageio-ffmpeg)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="skip training: evaluate the head.onnx already in --out and rewrite metrics.json")
    p.add_argument("--ladders", default="all", help="comma-separated ladders to evaluate (default: all)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N train images (smoke tests)")
    p.add_argument("--items-from-folder", action="store_true",
                   help="--data is a plain folder of images (MOS 3 for all; smoke tests only)")
    return p


def parse_weights(text: str) -> dict[str, float]:
    """``"exposure=1,colour=0.6"`` -> ``{"exposure": 1.0, "colour": 0.6}``; names must be spatial ladders
    (the ``type`` of ``--spatial-weights``: argparse reports a bad value with the option's name)."""
    from .data import SPATIAL_WEIGHTS

    out = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SPATIAL_WEIGHTS:
            raise argparse.ArgumentTypeError(f"{part!r} is not NAME=WEIGHT with NAME one of {sorted(SPATIAL_WEIGHTS)}")
        try:
            w = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} in {part!r} is not a number") from None
        if not (w >= 0 and math.isfinite(w)):
            raise argparse.ArgumentTypeError(f"weight {w} of {name!r} must be finite and at least 0")
        out[name] = w
    return out


def _number(text: str, cast: type, noun: str):
    """``cast(text)``, or an argparse error saying that ``text`` is not ``noun``."""
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def probability(text: str) -> float:
    """A number in [0, 1] (an argparse ``type``)."""
    v = _number(text, float, "a number")
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{v} must be between 0 and 1")
    return v


def positive_int(text: str) -> int:
    """An integer of at least 1 (an argparse ``type``: a bad value is reported with the option's name)."""
    v = _number(text, int, "an integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


ARCH_OPTIONS = {"arch": "--arch", "width": "--width", "spatial_stride": "--spatial-stride"}


def initial_head(args: argparse.Namespace) -> FastHead:
    """The head training starts from: new (``--arch``, ``--width``, ``--spatial-stride``; those not
    given keep :class:`HeadConfig`'s defaults) or the ``--init`` head, whose architecture options
    must not be contradicted. Fills those three options of ``args`` with the architecture used."""
    given = {k: getattr(args, k) for k in ARCH_OPTIONS if getattr(args, k) is not None}
    if args.init:
        head, meta = load_trainable_head(args.init)
        args.init_model = f"{meta.get('name', '?')} {meta.get('version', '?')}"   # recorded in metrics.json
        clash = {k: v for k, v in given.items() if v != getattr(head.config, k)}
        if clash:
            said = ", ".join(f"{ARCH_OPTIONS[k]} {v} (it has {getattr(head.config, k)})" for k, v in clash.items())
            raise ValueError(f"--init {args.init} has another architecture than {said}; leave "
                             f"{' and '.join(ARCH_OPTIONS[k] for k in clash)} out (the head's own architecture "
                             "is used)")
    else:
        head = FastHead(HeadConfig(**given))
    record_architecture(args, head.config)
    return head.train()


def record_architecture(args: argparse.Namespace, config: HeadConfig) -> None:
    """Set ``args``' architecture options to ``config``'s (what ``metrics.json`` records)."""
    for k in ARCH_OPTIONS:
        setattr(args, k, getattr(config, k))


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
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _import_everything(args: argparse.Namespace) -> None:
    """Import every module the run will need now, so that a long run uses one consistent snapshot
    of the code (modules imported lazily later could come from a newer, incompatible edit), and
    find the VMAF binary before training rather than after it."""
    from ...backends import fast, onnx_runtime  # noqa: F401
    from . import evaluate  # noqa: F401
    from .. import vmaf  # noqa: F401
    if args.vmaf and args.eval_ladder:
        vmaf.ffmpeg_with_vmaf()


def load_split(args: argparse.Namespace) -> tuple[list[ImageItem], list[ImageItem]]:
    if args.items_from_folder:
        from .data import items_from_images
        items: list[ImageItem] = items_from_images(args.data)
    else:
        items = read_biq2021_train(args.data)
    train_items, val_items = split_train_val(items, args.val_fraction, args.split_seed)
    if args.limit_train:
        train_items = train_items[:args.limit_train]
    return train_items, val_items


def train(args: argparse.Namespace) -> dict[str, Any]:
    _import_everything(args)
    from ...backends.onnx_runtime import export_onnx
    from .evaluate import evaluate_quality, evaluate_temporal, make_scorer, spread_subset

    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    head = initial_head(args)      # before anything is read or written: a bad --init fails at once
    os.makedirs(args.out, exist_ok=True)
    train_items, val_items = load_split(args)

    sampling = head.sampling_config()
    data = GroupBatches(train_items, sampling, args.steps, args.groups, seed=args.seed,
                        image_groups=args.image_groups, p_temporal=args.p_temporal,
                        temporal_levels=args.temporal_levels, spatial_weights=args.spatial_weights,
                        p_resample=args.p_resample, p_resample_images=args.p_resample_images)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=args.workers,
                                         prefetch_factor=2 if args.workers else None)
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    log_path = os.path.join(args.out, "train_log.jsonl")
    log = open(log_path, "w")
    running: dict[str, float] = {}
    head.train()
    t_loop = time.perf_counter()
    for step, batch in loader:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        out = head(batch.fragments, batch.global_view)
        parts = compute_losses(out, batch, args.margin)
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
        opt.step()
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            n = args.log_every if (step + 1) % args.log_every == 0 else (step + 1) % args.log_every
            rec = {"step": step + 1, "lr": opt.param_groups[0]["lr"], "segments": int(batch.fragments.shape[0]),
                   "elapsed_s": round(time.perf_counter() - t_loop, 1), **{k: round(v / n, 5) for k, v in running.items()}}
            running = {}
            if args.val_every and (step + 1) % args.val_every == 0 and step + 1 < args.steps:
                try:   # a log-only check: a failure here must not end the run
                    scorer = make_scorer(head)
                    q = evaluate_quality(scorer, spread_subset(val_items, args.val_quick), seed=args.seed)
                    tc = evaluate_temporal(scorer, spread_subset(val_items, args.val_quick // 4), seed=args.seed)
                    rec["val_quick"] = {"srcc": round(q["srcc"], 4), "plcc": q["plcc"] and round(q["plcc"], 4),
                                        "n": q["n"], "temporal": round(tc["consistency_without_reverse"], 4),
                                        "n_temporal": tc["images"]}
                except Exception as e:  # noqa: BLE001
                    rec["val_quick"] = {"error": f"{type(e).__name__}: {e}"}
                head.train()
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
        if (step + 1) % 200 == 0:
            save_head(head.eval(), os.path.join(args.out, "checkpoint.safetensors"), sampling, name=MODEL_NAME,
                      version=f"{args.version}-step{step + 1}")
            head.train()
    log.close()
    train_seconds = time.perf_counter() - t_loop

    head.eval()
    st_path = os.path.join(args.out, "head.safetensors")
    onnx_path = os.path.join(args.out, "head.onnx")
    save_head(head, st_path, sampling, name=MODEL_NAME, version=args.version)
    export_onnx(head, onnx_path, sampling, name=MODEL_NAME, version=args.version)
    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    if os.path.exists(ckpt):
        os.remove(ckpt)

    return finish(args, train_items, val_items, train_seconds, t_start, cpu_start)


def finish(args, train_items, val_items, train_seconds, t_start, cpu_start) -> dict[str, Any]:
    """Evaluate ``--out``/head.onnx on the validation split and write ``metrics.json``."""
    from ...backends.head import load_head
    from .evaluate import evaluate

    st_path = os.path.join(args.out, "head.safetensors")
    onnx_path = os.path.join(args.out, "head.onnx")
    head, _ = load_head(st_path)
    record_architecture(args, head.config)     # the evaluated head's, also with --evaluate-only
    t_eval = time.perf_counter()
    ladders = None if args.ladders == "all" else tuple(x.strip() for x in args.ladders.split(",") if x.strip())
    metrics = evaluate(onnx_path, val_items, n_quality=args.eval_quality or None, n_ladder=args.eval_ladder,
                       n_temporal=args.eval_temporal, seed=args.seed, ladders=ladders, vmaf=args.vmaf,
                       n_ladder_resampled=args.eval_ladder_resampled, scene=args.eval_scene)
    eval_seconds = time.perf_counter() - t_eval
    result = {
        "model": MODEL_NAME, "version": args.version, "vqametric": __version__,
        "evaluated_file": "head.onnx", "split": {"train": len(train_items), "validation": len(val_items),
                                                  "seed": args.split_seed, "fraction": args.val_fraction},
        "validation": metrics,
        "files": {"head.onnx": os.path.getsize(onnx_path), "head.safetensors": os.path.getsize(st_path)},
        "parameters": sum(p.numel() for p in head.parameters()),
        "timing": {"train_wall_s": None if train_seconds is None else round(train_seconds, 1),
                   "eval_wall_s": round(eval_seconds, 1),
                   "total_wall_s": round(time.perf_counter() - t_start, 1),
                   "cpu_s": round(_cpu_seconds() - cpu_start, 1), "threads": args.threads, "workers": args.workers,
                   "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine()},
        "config": {k: v for k, v in vars(args).items() if k not in ("data", "out", "argv")},
        "loss_weights": LOSS_WEIGHTS,
        "command": "python -m vqametric.train.fast.head_trainer " + " ".join(_public_argv(getattr(args, "argv", []))),
        "software": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def _public_argv(argv: list[str]) -> list[str]:
    """The command line with the data/output folders replaced by placeholders."""
    out, skip = [], None
    for a in argv:
        if skip:
            out.append(skip)
            skip = None
            continue
        if a in ("--data", "--out"):
            out.append(a)
            skip = "DATA" if a == "--data" else "OUT"
            continue
        if a.startswith("--data="):
            a = "--data=DATA"
        elif a.startswith("--out="):
            a = "--out=OUT"
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.evaluate_only:
        _import_everything(args)
        train_items, val_items = load_split(args)
        result = finish(args, train_items, val_items, None, time.perf_counter(), _cpu_seconds())
    else:
        result = train(args)
    v = result["validation"]
    summary = {"srcc": v["quality"]["srcc"], "plcc": v["quality"]["plcc"],
               "ladder_tau": v.get("ladders", {}).get("mean_tau"),
               "temporal_consistency": v.get("temporal", {}).get("consistency_all"),
               "onnx_bytes": result["files"]["head.onnx"], "train_wall_s": result["timing"]["train_wall_s"]}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
