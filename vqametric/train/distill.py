"""Distillation: a reasoning model scores videos, the fast head learns those scores.

1. **Teacher.** Every video of the list is scored by a reasoning model with
   ``scoring="expected"`` (the probability-weighted level tokens: smooth, no sampling). Scores
   are cached in ``OUTPUT/teacher_scores.jsonl`` keyed by path, so an interrupted run resumes
   without re-scoring; answers that could not be parsed are skipped (and counted).
2. **Student.** The fast head (the default architecture, or ``init`` = an existing head file to
   fine-tune) sees each clip exactly as inference does (:class:`~vqametric.backends.fast.FastScorer`'s
   preprocessing); a clip's score is the mean of its segment scores.
3. **Loss.** The fast-head recipe's losses against the teacher's scores: bell-shaped regression
   plus a small smooth-L1 term, and Thurstone fidelity ranking over every pair of the batch.
4. **Output.** ``NAME.safetensors`` and ``NAME.onnx`` in ``OUTPUT``, ``metrics.json`` (student vs
   teacher on a held-out share of the videos, and vs MOS where the list has it), ``log.json``;
   the head is installed in :func:`vqametric.registry.user_models_dir` so ``get_card(NAME)``
   and ``vqametric score --model NAME`` find it.

``vqametric train distill --config FILE`` runs it from a :class:`DistillConfig` (top-level keys,
``[teacher]``: :class:`TeacherSection`, ``[student]``: :class:`DistillSettings`).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from ..backends import build_scorer
from ..backends.fast import FastScorer
from ..backends.head import FastHead, HeadConfig, load_trainable_head, save_head
from ..backends.onnx_runtime import export_onnx
from ..registry import COMPACT_MODEL, ModelCard, get_card, install_head
from ..sampling.plan import SamplingConfig
from .config import Job, Override, TrainConfigError, check_output_folder, internal, load, option, to_table
from .fast import losses as L
from .fast.head_trainer import lr_at
from .manifest import load_manifest
from .metrics import correlation_report

Teacher = Callable[[str], float]  # video path -> score on 1-5 (NaN when it has none)


@dataclass
class DistillSettings:
    """Student training settings (the ``[student]`` table and top-level keys of the config)."""

    name: str = option("distilled-head", help="model name the head is registered under")
    init: str | None = option(None, path="local", help="head to fine-tune: a .safetensors head or a fast model name "
                              "such as vqametric-fast (default: a new default-architecture head)")
    steps: int = option(300, lo=1)
    batch_size: int = option(8, lo=2)
    learning_rate: float = option(1e-3, positive=True)
    weight_decay: float = option(1e-4, lo=0.0)
    val_fraction: float = option(0.2, lo=0.0, hi=0.9)
    seed: int = option(0, lo=0)
    version: str = "distilled"


@dataclass
class TeacherSection:
    """``[teacher]``: the reasoning model that scores the videos, and how it is loaded."""
    card: str = option("vqathinker-8b", help="reasoning model card (`vqametric models`)")
    checkpoint: str | None = option(None, path="local", help="checkpoint folder or Hugging Face Hub id")
    device: str | None = None
    dtype: Literal["bfloat16", "float16", "float32"] | None = None
    scoring: Literal["expected", "parsed"] = "expected"
    num_samples: int = option(1, lo=1)
    max_new_tokens: int = option(1024, lo=1)
    batch_size: int = option(4, lo=1)
    frames: int | None = option(None, lo=1, help="frames sampled per video (default: the card's)")
    global_size: int | None = option(None, lo=28, help="frame size in pixels (default: the card's)")


@dataclass(kw_only=True)
class DistillConfig:
    """A validated distillation config: the top-level keys, ``[teacher]`` and ``[student]``."""
    videos: str = option(help="a .txt list of videos (one path per line) or a training manifest (CSV/JSONL with mos)",
                         path="file")
    output: str = option(help="folder for the head files, the teacher's cached scores, metrics and log", path="file")
    overwrite: bool = option(False, help="allow a non-empty output folder (cached teacher scores are reused)")
    install: bool = option(True, help="install the head in the user models folder so it is usable by name")
    mode: Literal["distill"] = "distill"
    teacher: TeacherSection = option(factory=TeacherSection)
    student: DistillSettings = option(factory=DistillSettings)
    source: str = internal("<config>")


def read_video_list(path: str) -> list[tuple[str, float | None]]:
    """``(video, mos or None)`` rows: a ``.txt`` file (one path per line) or a training manifest."""
    if path.endswith(".txt"):
        base = os.path.dirname(os.path.abspath(path))
        rows = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                p = line.strip()
                if p and not p.startswith("#"):
                    rows.append((p if os.path.isabs(p) else os.path.join(base, p), None))
        return rows
    return [(r.path, r.mos) for r in load_manifest(path)]


def teacher_scores(videos: Sequence[str], teacher: Teacher, cache_path: str,
                   echo: Callable[[str], None] | None = None) -> dict[str, float]:
    """Teacher score of every video (NaN when none), cached in the JSON Lines file ``cache_path``."""
    done: dict[str, float] = {}
    if os.path.exists(cache_path):
        with open(cache_path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                done[rec["path"]] = math.nan if rec["score"] is None else float(rec["score"])
    with open(cache_path, "a", encoding="utf-8") as f:
        for i, v in enumerate(videos):
            if v in done:
                continue
            s = float(teacher(v))
            done[v] = s
            f.write(json.dumps({"path": v, "score": None if math.isnan(s) else s}) + "\n")
            f.flush()
            if echo:
                echo(f"teacher {i + 1}/{len(videos)}: {os.path.basename(v)} -> {s:.4f}")
    return done


class LMMTeacher:
    """A teacher that scores with a reasoning model (``scorer``), by default with expected scores."""

    def __init__(self, card: str | ModelCard, device: str | None = None, **options: Any):
        options.setdefault("scoring", "expected")
        self.scorer = build_scorer(get_card(card), device=device, **options)

    def __call__(self, path: str) -> float:
        _, (r,) = self.scorer.score([path])
        return r.score if r.parse_ok else math.nan


def _student(settings: DistillSettings) -> tuple[FastHead, ModelCard]:
    if settings.init:
        head, _ = load_trainable_head(settings.init)
        card = get_card(settings.init)
    else:
        head = FastHead(HeadConfig())
        card = get_card(COMPACT_MODEL)
    return head, get_card(card, name=settings.name, version=settings.version)


def _clip_scores(head: FastHead, views: Sequence[dict[str, torch.Tensor]], k: int) -> torch.Tensor:
    frag = torch.cat([v["fragments"] for v in views]).float()
    glob = torch.cat([v["global_view"] for v in views]).float()
    out = head(frag.view(-1, k, *frag.shape[1:]), glob.view(-1, k, *glob.shape[1:]))["score"]
    sizes = [v["fragments"].shape[0] // k for v in views]
    return torch.stack([s.mean() for s in out.split(sizes)])


def train_student(videos: Sequence[str], targets: Sequence[float], settings: DistillSettings,
                  echo: Callable[[str], None] | None = None) -> tuple[FastHead, ModelCard, list[dict[str, Any]]]:
    """Fit the fast head to ``targets`` (1-5) on ``videos``; returns (head in eval mode, card, log)."""
    torch.manual_seed(settings.seed)
    head, card = _student(settings)
    head.train()
    prep = FastScorer(card, head=head)
    views = []
    for v in videos:  # preprocessed once, kept in float16 (about 3 MB per clip)
        vw, _ = prep.prepare(v)
        views.append({k: t.detach().half() for k, t in vw.items()})
    y = torch.tensor(list(targets), dtype=torch.float32)
    k = card.sampling.frames_per_segment
    opt = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(settings.seed)
    log = []
    warmup = max(1, settings.steps // 20)
    for step in range(settings.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, settings.steps, settings.learning_rate, warmup)
        idx = rng.choice(len(views), size=min(settings.batch_size, len(views)), replace=False)
        pred = _clip_scores(head, [views[i] for i in idx], k)
        tgt = y[torch.from_numpy(idx)]
        parts = {"regression": L.bell_loss(pred, tgt, 0.5) + 0.2 * L.smooth_l1(pred, tgt),
                 "rank": L.batch_fidelity_loss(pred, tgt)}
        loss = parts["regression"] + parts["rank"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        entry = {"step": step, "loss": loss.item(), **{n: v.item() for n, v in parts.items()}}
        log.append(entry)
        if echo and (step % 25 == 0 or step == settings.steps - 1):
            echo(f"step {step}: loss {entry['loss']:.4f}")
    return head.eval(), card, log


def evaluate(head: FastHead, card: ModelCard, videos: Sequence[str], reference: Sequence[float]) -> dict[str, Any]:
    """Correlation of the student's scores with ``reference`` scores on ``videos``."""
    scorer = FastScorer(card, head=head)
    with torch.no_grad():
        pred = [float(scorer.score([v])[0][0]) for v in videos]
    return {"n": len(videos), **correlation_report(pred, list(reference)), "predictions": pred}


def distill(rows: Sequence[tuple[str, float | None]], teacher: Teacher, output: str, settings: DistillSettings,
            echo: Callable[[str], None] | None = None, install: bool = True) -> dict[str, Any]:
    """Run the whole distillation (see the module docstring); returns the metrics."""
    os.makedirs(output, exist_ok=True)
    t0 = time.perf_counter()
    videos = [v for v, _ in rows]
    scores = teacher_scores(videos, teacher, os.path.join(output, "teacher_scores.jsonl"), echo)
    usable = [(v, m) for v, m in rows if math.isfinite(scores[v])]
    if len(usable) < 4:
        raise ValueError(f"only {len(usable)} video(s) have a teacher score; distillation needs at least 4 "
                         "(check the teacher's parse failures in teacher_scores.jsonl)")
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(usable))
    n_val = max(2, int(round(settings.val_fraction * len(usable)))) if settings.val_fraction > 0 else 0
    val = [usable[i] for i in order[:n_val]]
    train = [usable[i] for i in order[n_val:]]
    t1 = time.perf_counter()
    head, card, log = train_student([v for v, _ in train], [scores[v] for v, _ in train], settings, echo)
    t2 = time.perf_counter()
    metrics: dict[str, Any] = {
        "name": settings.name, "settings": asdict(settings), "videos": len(rows), "teacher_scored": len(usable),
        "teacher_failures": len(rows) - len(usable), "train": len(train), "validation": len(val),
        "seconds": {"teacher": round(t1 - t0, 2), "student": round(t2 - t1, 2)},
    }
    if val:
        metrics["student_vs_teacher"] = evaluate(head, card, [v for v, _ in val], [scores[v] for v, _ in val])
        with_mos = [(v, m) for v, m in val if m is not None]
        if len(with_mos) >= 3:
            metrics["student_vs_mos"] = evaluate(head, card, [v for v, _ in with_mos], [m for _, m in with_mos])
            metrics["teacher_vs_mos"] = {"n": len(with_mos), **correlation_report(
                [scores[v] for v, _ in with_mos], [m for _, m in with_mos])}
    st = os.path.join(output, settings.name + ".safetensors")
    ox = os.path.join(output, settings.name + ".onnx")
    save_head(head, st, card.sampling, name=settings.name, version=settings.version)
    export_onnx(head, ox, card.sampling, name=settings.name, version=settings.version)
    metrics["files"] = [st, ox]
    if install:
        metrics["installed"] = install_head([st, ox], settings.name)
    with open(os.path.join(output, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    with open(os.path.join(output, "log.json"), "w", encoding="utf-8") as f:
        json.dump(log, f)
    return metrics


# ----------------------------------------------------------------------------------------------
# `vqametric train distill --config FILE`
def load_distill_config(path: str | os.PathLike | None, overrides: Sequence[Override] = ()) -> DistillConfig:
    """Read and validate a distillation config; relative paths are resolved against its folder."""
    if path is None:
        raise TrainConfigError("`vqametric train distill` needs --config FILE (docs/training-grpo-aso.md)")
    return load(DistillConfig, path, overrides)


def preflight(cfg: DistillConfig) -> dict[str, Any]:
    """The checks that load no model: the output folder and the video list."""
    check_output_folder(cfg.output, cfg.overwrite, cfg.source, " (cached teacher scores are then reused)")
    return {"videos_listed": len(read_video_list(cfg.videos))}


def run_distill(cfg: DistillConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score the videos with the teacher, train the student; returns the output folder and the
    metrics (without the per-video predictions)."""
    rows = read_video_list(cfg.videos)
    t = to_table(cfg.teacher)
    card, device = get_card(t.pop("card")), t.pop("device")
    if card.backend != "lmm":
        raise TrainConfigError(f"{cfg.source}: [teacher] card {card.name!r} is a {card.backend} model; the teacher "
                               "must be a reasoning model (`vqametric models`)")
    over = {k: v for k, v in (("num_segments", t.pop("frames")), ("global_size", t.pop("global_size"))) if v}
    if over:
        card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(), **over}))
    teacher = LMMTeacher(card, device=device, **{k: v for k, v in t.items() if v is not None})
    metrics = distill(rows, teacher, cfg.output, cfg.student, echo, install=cfg.install)
    summary = {k: v for k, v in metrics.items() if k != "settings"}
    for part in ("student_vs_teacher", "student_vs_mos"):
        if part in summary:
            summary[part] = {k: v for k, v in summary[part].items() if k != "predictions"}
    return {"output": cfg.output, **summary}


JOB = Job(load_distill_config, preflight, run_distill)
