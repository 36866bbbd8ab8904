"""The runs of ``vqametric train grpo`` and ``vqametric train aso``: load the manifest and the
checkpoint, train, and write into the output folder ``train_config.json`` (the resolved config),
``log.json`` (per-step statistics, rewritten after every step) and the weights as safetensors:
``adapter/`` (LoRA, PEFT's layout) or ``model/`` (a complete checkpoint folder that
``checkpoint=`` loads). The configs are :mod:`vqametric.train.reasoning.config`."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...backends import build_scorer
from ...registry import get_card
from ...sampling.plan import SamplingConfig
from ..config import Job, Override, TrainConfigError, check_output_folder
from ..manifest import DIMENSION_TITLES, DIMENSIONS, dimension_labels, load_manifest
from .aso import ASOTrainer
from .config import ASOTrainConfig, GRPOTrainConfig, TrainConfig, load_config
from .grpo import GRPOTrainer
from .policies import LevelSample, iter_batches, training_adapter
from .rewards import VQAThinkerRewards

Echo = Callable[[str], None]


def load_records(cfg: TrainConfig) -> list:
    """The manifest's rows (for ASO only those with a dimension rating); errors name the file,
    the line and the column."""
    records = load_manifest(cfg.manifest)
    if cfg.mode == "aso":
        rated = [r for r in records if r.dimensions]
        if not rated:
            raise TrainConfigError(f"{cfg.manifest}: no row has a dimension rating; ASO needs the columns "
                                   "motion_quality, motion_amplitude, aesthetic_quality, content_quality, "
                                   "clarity_quality (at least one per row that trains)")
        records = rated
    return records


def preflight(cfg: TrainConfig) -> dict[str, Any]:
    """The checks that load no model: the output folder and the manifest."""
    check_output_folder(cfg.output, cfg.overwrite, cfg.source)
    return {"videos": len(load_records(cfg))}


def load_adapter(cfg: TrainConfig, prompt: str):
    """The inference adapter of the configured checkpoint (the same loading as ``vqametric explain``)."""
    m = cfg.model
    card = get_card(m.card)
    if card.backend != "lmm":
        raise TrainConfigError(f"{cfg.source}: [model] card {m.card!r} is a {card.backend} model; training here "
                               "needs a reasoning-model card (`vqametric models`)")
    over = {k: v for k, v in (("num_segments", m.frames), ("global_size", m.global_size)) if v is not None}
    if over:
        card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(), **over}))
    opts: dict[str, Any] = {"checkpoint": m.checkpoint, "prompt": prompt}
    if m.dtype:
        opts["dtype"] = m.dtype
    if m.attn_implementation:
        opts["attn_implementation"] = m.attn_implementation
    return build_scorer(card, device=m.device, runtime=m.runtime, **opts).adapter


def scheduler(optimizer: torch.optim.Optimizer, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then a constant learning rate."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)


class RunLog:
    """``log.json`` of a run: ``{"mode", "info", "steps": [...], "summary"}``, rewritten after
    every step (non-finite numbers as null); each step's line also goes to ``echo``."""

    def __init__(self, cfg: TrainConfig, echo: Echo | None):
        self.cfg, self.echo = cfg, echo
        self.path = os.path.join(cfg.output, "log.json")
        self.steps: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    def add(self, entry: dict[str, Any], line: str) -> None:
        self.steps.append({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in entry.items()})
        self.write()
        if self.echo:
            self.echo(line)

    def write(self, summary: dict[str, Any] | None = None) -> None:
        doc = {"mode": self.cfg.mode, "info": self.info, "steps": self.steps}
        if summary is not None:
            doc["summary"] = summary
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.path)


def window_means(steps: list[dict[str, Any]], key: str, n: int = 10) -> dict[str, float] | None:
    """Mean of ``key`` over the first and the last ``window`` steps (at most ``n``, at most half)."""
    vals = [s[key] for s in steps if s.get(key) is not None]
    if not vals:
        return None
    w = max(1, min(n, len(vals) // 2 or 1))
    return {"first": float(sum(vals[:w]) / w), "last": float(sum(vals[-w:]) / w), "window": w}


def _start(cfg: TrainConfig, prompt: str, kind: str, echo: Echo | None, **options: Any):
    """What every run begins with: check the output, read the manifest, seed, load the model and
    make it trainable, write ``train_config.json``. Returns ``(records, trainable, log)``."""
    check_output_folder(cfg.output, cfg.overwrite, cfg.source)
    records = load_records(cfg)
    os.makedirs(cfg.output, exist_ok=True)
    torch.manual_seed(cfg.seed)
    adapter = load_adapter(cfg, prompt)
    trainable = training_adapter(adapter, kind, lora=cfg.lora,
                                 gradient_checkpointing=cfg.model.gradient_checkpointing, **options)
    resolved = dict(cfg.to_dict(), resolved={"family": adapter.family, "sampling": adapter.sampling.to_dict()})
    with open(os.path.join(cfg.output, "train_config.json"), "w", encoding="utf-8") as f:
        json.dump(resolved, f, indent=2)
    log = RunLog(cfg, echo)
    log.info = {"videos": len(records), "trainable_parameters": trainable.num_trainable(), "family": adapter.family,
                "lora": cfg.lora is not None}
    return records, trainable, log


def _save(cfg: TrainConfig, trainable) -> list[str]:
    what = cfg.save if cfg.save != "auto" else ("adapter" if cfg.lora is not None else "full")
    sub = "adapter" if what == "adapter" else "model"
    folder = os.path.join(cfg.output, sub)
    trainable.save(folder, what)
    return sorted(os.path.join(sub, f) for f in os.listdir(folder))


def run_grpo(cfg: GRPOTrainConfig, echo: Echo | None = None) -> dict[str, Any]:
    """GRPO on the manifest's videos; returns the summary written to ``log.json``."""
    records, policy, log = _start(cfg, "overall", "grpo", echo, max_new_tokens=cfg.grpo.max_new_tokens)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    trainer = GRPOTrainer(policy, VQAThinkerRewards(cfg.reward_config()), opt, cfg.grpo_config(),
                          perturb=policy.perturb, scheduler=scheduler(opt, cfg.warmup_steps))
    batches = iter_batches(len(records), cfg.batch_size, np.random.default_rng(cfg.seed))
    t_start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        idx = next(batches)
        lr = opt.param_groups[0]["lr"]
        samples = [{"prompt": policy.prompt(records[i].path), "mos": records[i].mos} for i in idx]
        res = trainer.step(samples)
        entry = dict(res.stats, step=step, lr=lr, seconds=time.perf_counter() - t0,
                     example=res.rollouts.texts[0][:300])
        log.add(entry, f"step {step}/{cfg.steps}  reward {entry['reward/total']:.3f}  "
                       f"format {entry.get('reward/format', float('nan')):.2f}  kl {entry.get('kl', 0.0):.4f}  "
                       f"loss {entry['loss']:.4f}  {entry['seconds']:.1f}s")
    files = _save(cfg, policy)
    summary = {"steps": cfg.steps, "seconds": time.perf_counter() - t_start, "saved": files,
               "reward/total": window_means(log.steps, "reward/total"),
               "reward/regression": window_means(log.steps, "reward/regression"),
               "reward/format": window_means(log.steps, "reward/format"),
               "kl_max": max((s.get("kl") or 0.0) for s in log.steps)}
    log.write(summary)
    return summary


def _aso_stage(cfg: ASOTrainConfig, scorer, log: RunLog, batch: Callable[[], tuple], stage: str, steps: int,
               lr: float) -> None:
    """``steps`` steps of ``stage`` (``"sft"``: the rationale NLL; ``"aso"``), each logged."""
    opt = torch.optim.AdamW(scorer.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = scheduler(opt, cfg.warmup_steps)
    trainer = ASOTrainer(scorer, opt, cfg.aso_config())
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        samples, labels = batch()
        lr_now = opt.param_groups[0]["lr"]
        st = trainer.sft_step(samples) if stage == "sft" else trainer.step(samples, labels)
        sched.step()
        entry = dict(st, stage=stage, step=step, lr=lr_now, seconds=time.perf_counter() - t0)
        if stage == "sft":
            line = f"sft {step}/{steps}  nll {st['sft/nll']:.4f}"
        else:
            line = (f"aso {step}/{steps}  loss {st['aso/loss']:.4f}  mae {st['aso/mae']:.3f}  "
                    f"kl {st['aso/kl_policy_ref']:.4f}")
        log.add(entry, f"{line}  {entry['seconds']:.1f}s")


def run_aso(cfg: ASOTrainConfig, echo: Echo | None = None) -> dict[str, Any]:
    """Optional supervised stage, then ASO on the manifest's dimension ratings; returns the summary."""
    records, scorer, log = _start(cfg, "dimensions", "aso", echo,
                                  dimensions=[DIMENSION_TITLES[d] for d in DIMENSIONS])
    labels_all = dimension_labels(records)
    batches = iter_batches(len(records), cfg.batch_size, np.random.default_rng(cfg.seed))

    def batch():
        idx = next(batches)
        samples = [LevelSample(scorer.prompt(records[i].path), tuple(labels_all[i].tolist()), records[i].mos,
                               records[i].rationale) for i in idx]
        return samples, labels_all[idx]

    t_start = time.perf_counter()
    sft_steps = cfg.aso.sft_steps
    if sft_steps:
        _aso_stage(cfg, scorer, log, batch, "sft", sft_steps, cfg.aso.sft_learning_rate or cfg.learning_rate)
        scorer.reset_reference()          # ASO regularises toward the model after the supervised stage
    _aso_stage(cfg, scorer, log, batch, "aso", cfg.steps, cfg.learning_rate)
    files = _save(cfg, scorer)
    aso_steps = [s for s in log.steps if s.get("stage") == "aso"]
    summary = {"steps": cfg.steps, "sft_steps": sft_steps, "seconds": time.perf_counter() - t_start, "saved": files,
               "aso/mae": window_means(aso_steps, "aso/mae"), "aso/loss": window_means(aso_steps, "aso/loss"),
               "aso/kl_policy_ref_last": aso_steps[-1]["aso/kl_policy_ref"],
               "aso/kl_target_ref_last": aso_steps[-1]["aso/kl_target_ref"]}
    log.write(summary)
    return summary


def _job(mode: str, run: Callable[[Any, Echo | None], dict[str, Any]]) -> Job:
    def load(path: str | None, overrides: Sequence[Override]) -> TrainConfig:
        if path is None:
            raise TrainConfigError(f"`vqametric train {mode}` needs --config FILE (docs/training-grpo-aso.md)")
        return load_config(path, mode, overrides)

    def run_and_report(cfg: TrainConfig, echo: Echo | None) -> dict[str, Any]:
        return {"output": cfg.output, **run(cfg, echo)}

    return Job(load, preflight, run_and_report)


GRPO_JOB = _job("grpo", run_grpo)
ASO_JOB = _job("aso", run_aso)

__all__ = ["run_grpo", "run_aso", "load_records", "load_adapter", "preflight", "scheduler", "RunLog", "window_means",
           "GRPO_JOB", "ASO_JOB"]
