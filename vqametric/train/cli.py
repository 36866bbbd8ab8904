"""``vqametric train head|fusion|grpo|aso|distill``: the one entry point of training.

Each mode reads one typed config (:mod:`vqametric.train.config`): ``--config FILE`` (TOML, or JSON
with the same structure; relative paths are resolved against the file's folder), then
``--set TABLE.KEY=VALUE`` overrides (repeatable, parsed with the key's type, paths relative to the
working folder). ``--steps``, ``--output`` and ``--device`` are shortcuts for the keys they name in
``--help``; ``head`` and ``fusion`` take every key of their config as an option of its own
(``--steps 2400 --spatial-stride 4``), so they run without a file. ``--check`` validates the config and the data,
prints the resolved config and loads no model; ``--quiet`` drops the progress lines on stderr.
A run prints a JSON summary on stdout. Exit status: 0 done, 1 the run failed (loading the model,
training, saving), 2 the config or the data is wrong (then nothing is loaded).

The modes (docs/training-head.md, docs/training-fusion.md, docs/training-grpo-aso.md):

* ``head``: the compact fast head's recipe (:mod:`vqametric.train.fast.head_trainer`);
* ``fusion``: the default model's recipe (:mod:`vqametric.train.fast.fusion_trainer`);
* ``grpo``, ``aso``: reasoning models (:mod:`vqametric.train.reasoning.run`);
* ``distill``: a reasoning model's scores into the fast head (:mod:`vqametric.train.distill`).

:func:`register` adds the ``train`` command to the main ``vqametric`` parser; :func:`main` runs
it alone (``python -m vqametric.train.cli head --help``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from ..errors import VQAMetricError
from .config import Job, Override, TrainConfigError, split_override, to_table
from .options import LazyParser, add_flags, flag_overrides

#: mode -> (module, its :class:`~vqametric.train.config.Job`, help)
MODES = {
    "head": ("vqametric.train.fast.head_trainer", "JOB",
             "the compact fast head's recipe on BIQ2021 and synthetic ladders"),
    "fusion": ("vqametric.train.fast.fusion_trainer", "JOB",
               "the default model's recipe: frozen features cached once, readouts fitted on them"),
    "grpo": ("vqametric.train.reasoning.run", "GRPO_JOB",
             "GRPO with VQAThinker's rewards (ranking, regression, format, temporal)"),
    "aso": ("vqametric.train.reasoning.run", "ASO_JOB",
            "Analytic Score Optimization of the five dimension ratings (optional supervised stage first)"),
    "distill": ("vqametric.train.distill", "JOB",
                "score videos with a reasoning model and train the fast head on the scores"),
}
_REASONING = {"--steps": ("steps", "optimiser steps"), "--output": ("output", "the output folder"),
              "--device": ("model.device", "cpu, cuda or cuda:N")}
#: Options that set one key each: mode -> {option: (key, help)}.
SHORTCUTS = {"grpo": _REASONING, "aso": _REASONING,
             "distill": {"--steps": ("student.steps", "student steps"), "--output": ("output", "the output folder"),
                         "--device": ("teacher.device", "the teacher's device")}}


def add_head_options(parser: argparse.ArgumentParser) -> None:
    """The options of every key of the head's config (its module loads torch, hence on first use)."""
    from .fast.head_config import HeadTrainConfig   # heavy: torch, loaded only when `train head` is parsed

    add_flags(parser, HeadTrainConfig)
    parser.set_defaults(flag_class=HeadTrainConfig)


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """The options of every key of the default model's recipe (its config module loads no torch)."""
    from .fast.fusion_config import FusionTrainConfig   # lazy: only when `train fusion` is parsed

    add_flags(parser, FusionTrainConfig)
    parser.set_defaults(flag_class=FusionTrainConfig)


#: The modes whose config keys are options of their own: mode -> (adds the options, its doc).
FLAG_MODES = {"head": (add_head_options, "docs/training-head.md"),
              "fusion": (add_fusion_options, "docs/training-fusion.md")}


# ----------------------------------------------------------------------------------------------
# the command
def _job(mode: str) -> Job:
    module, name, _ = MODES[mode]
    return getattr(importlib.import_module(module), name)   # torch and the training stack: loaded when a mode runs


def overrides(args: argparse.Namespace) -> list[Override]:
    """The overrides of a parsed command line: the shortcuts, ``head``'s or ``fusion``'s options, then ``--set``."""
    out = [(opt, key, str(getattr(args, opt[2:]))) for opt, (key, _) in SHORTCUTS.get(args.train_mode, {}).items()
           if getattr(args, opt[2:], None) is not None]
    if getattr(args, "flag_class", None) is not None:
        out += flag_overrides(args, args.flag_class)
    return out + [split_override(t) for t in args.set]


def _run(args: argparse.Namespace) -> int:
    try:
        job = _job(args.train_mode)
        cfg = job.load(args.config, overrides(args))
        info = job.preflight(cfg)
    except (VQAMetricError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(json.dumps({**to_table(cfg), **info}, indent=2))
        return 0
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = job.run(cfg, echo)
    except TrainConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (VQAMetricError, OSError, RuntimeError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def add_modes(parser: argparse.ArgumentParser) -> None:
    """Add the ``head``, ``fusion``, ``grpo``, ``aso`` and ``distill`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="train_mode", required=True, metavar="{" + ",".join(MODES) + "}",
                                parser_class=LazyParser)
    for mode, (_, _, helptext) in MODES.items():
        populate, doc = FLAG_MODES.get(mode, (None, "docs/training-grpo-aso.md"))
        p = sub.add_parser(mode, help=helptext, description=f"{helptext[0].upper()}{helptext[1:]}. The config is "
                           f"described in {doc}.", populate=populate)
        p.add_argument("--config", required=mode not in FLAG_MODES, default=None,
                       help="TOML or JSON config" + (" (optional: the options below set every key)"
                                                     if mode in FLAG_MODES else ""))
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of the config, e.g. --set steps=20 or --set grpo.beta=0.1 (repeatable)")
        for opt, (key, what) in SHORTCUTS.get(mode, {}).items():
            p.add_argument(opt, type=int if opt == "--steps" else str, default=None,
                           help=f"{what}: the same as --set {key}=VALUE")
        p.add_argument("--check", action="store_true",
                       help="validate the config and the data, print the resolved config, load no model")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
        p.set_defaults(func=_run, train_mode=mode)


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``train head|fusion|grpo|aso|distill`` to the ``vqametric`` command's subparsers; returns
    the ``train`` parser."""
    t = subparsers.add_parser("train", help="train the fast head, the default model's readouts or a reasoning "
                              "model (GRPO, ASO), or distil one into the fast head",
                              description="Train from a TOML/JSON config file and options.")
    add_modes(t)
    return t


def build_parser() -> argparse.ArgumentParser:
    """The ``vqametric train`` parser on its own."""
    parser = argparse.ArgumentParser(prog="vqametric train", description="Train from a config file and options.")
    add_modes(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``vqametric train`` on its own: ``main(["grpo", "--config", "run.toml"])``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


__all__ = ["register", "add_modes", "build_parser", "overrides", "main", "MODES", "SHORTCUTS", "FLAG_MODES",
           "add_head_options", "add_fusion_options"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
