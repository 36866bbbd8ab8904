"""Command line: ``vqametric score|explain|info|models|demo``.

``vqametric score a.mp4 b.mkv --format json --output scores.json`` scores each file; a file that
fails is reported with its reason and the others go on. Exit status: 0 when every file was scored,
1 when any failed, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import textwrap
from typing import Any, Sequence

from . import __version__
from .corpus import add_corpus_options
from .errors import BackendUnavailable, VQAMetricError, WeightsNotFound
from .explanation import describe
from .registry import DEFAULT_MODEL, get_card, list_models
from .regression.cli import register_regression
from .report import register_report
from .tabular import format_table
from .train.cli import register as register_train

# Imports inside the command functions below are deliberate laziness: `vqametric --version`, `--help`
# and `models` must start without loading torch, av or numpy, which scoring needs.


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _score(args: argparse.Namespace) -> int:
    """``vqametric score``: files, folders, manifests or stdin; streamed results, --jobs, --resume
    (see :mod:`vqametric.corpus`)."""
    from .corpus import run_score  # lazy: the scoring engine
    from .functional import get_scorer  # lazy: torch

    return run_score(args, get_scorer)


def _info(args: argparse.Namespace) -> int:
    from .io import open_clip  # lazy: av (decoding)

    failed, infos = 0, []
    for path in args.paths:
        try:
            with open_clip(path) as clip:
                infos.append(clip.info.to_dict())
        except VQAMetricError as e:
            failed += 1
            infos.append({"source": path, "error": type(e).__name__, "message": str(e)})
            print(f"failed: {path}: {type(e).__name__}: {e}", file=sys.stderr)
    if args.format == "json":
        _write(json.dumps(infos, indent=2) + "\n", None)
    else:
        for d in infos:
            print("\n".join(f"{k:>20}: {v}" for k, v in d.items()) + "\n")
    return 1 if failed else 0


def _models(args: argparse.Namespace) -> int:
    cards = [get_card(n).summary() for n in list_models()]
    if args.format == "json":
        print(json.dumps(cards, indent=2))
        return 0
    def weights(c):
        if c["runtimes"]:
            return ",".join(c["runtimes"])
        return "checkpoint=DIR|HUB_ID" if c["backend"] == "lmm" else "(weights not installed)"
    rows = [[c["name"], c["backend"], c["version"], weights(c), c["description"]] for c in cards]
    print(format_table(rows, ["name", "backend", "version", "runtimes", "description"]) if rows
          else "no models registered")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import make_demo_clips  # lazy: av, numpy
    from .functional import get_scorer  # lazy: torch

    folder = args.folder or os.path.join(tempfile.gettempdir(), "vqametric-demo")
    print(f"writing a sample clip and degraded copies to {folder} ...", file=sys.stderr)
    clips = make_demo_clips(folder)
    try:
        if args.untrained_head:
            import torch  # lazy: torch

            from .backends import FastHead, build_scorer  # lazy: torch
            from .backends.onnx_runtime import export_onnx  # optional: onnx
            torch.manual_seed(0)
            head = FastHead().eval()
            path = export_onnx(head, os.path.join(folder, "untrained-head.onnx"), head.sampling_config(num_segments=4),
                               name="untrained-head", version="random-init")
            scorer = build_scorer(get_card(path), device=args.device, runtime=args.runtime)
            print("NOTE: --untrained-head scores with a randomly initialised compact head (head architecture 3, "
                  "exported to ONNX): this exercises the whole pipeline, but the scores are NOT quality "
                  "estimates.", file=sys.stderr)
        else:
            scorer = get_scorer(args.model, args.device, args.runtime)
    except VQAMetricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = []
    for name, path in clips.items():
        _, (r,) = scorer.score([path])
        top = sorted(r.attribution.items(), key=lambda kv: -kv[1])[:2]
        rows.append([name, f"{r.score:.3f}", r.dominant_distortion or "",
                     ", ".join(f"{k} {v:.2f}" for k, v in top), f"{r.timings['total']:.2f}"])
    print(f"model: {scorer.card.name} {scorer.card.version} ({scorer.runtime})")
    print(format_table(rows, ["clip", "score (1-5)", "dominant distortion", "top severities", "seconds"]))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .backends import build_scorer  # lazy: torch

    def cli_syntax(message: str) -> str:
        """Library messages name keyword arguments; say the options of this command instead."""
        for pattern, option in ((r"\bcheckpoint=(?:'([^']*)'|([A-Za-z_|]+))", r"--checkpoint \1\2"),
                                (r"\bruntime='([^']*)'", r"--runtime \1"), (r"\bdtype=torch\.(\w+)", r"--dtype \1"),
                                (r"\bload_in_8bit=True", "--load-in-8bit"),
                                (r"sampling=\{'num_segments': \.\.\.\}", "--frames N"),
                                (r"\bbatch_size\b", "--batch-size"), (r"\bnum_samples\b", "--samples"),
                                (r"\bmax_new_tokens\b", "--max-new-tokens")):
            message = re.sub(pattern, option, message)
        return message

    options: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "num_samples": args.samples,
                               "temperature": args.temperature, "scoring": args.scoring, "retries": args.retries,
                               "batch_size": args.batch_size}
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    if args.dtype:
        options["dtype"] = args.dtype
    if args.load_in_8bit:
        options["load_in_8bit"] = True
    if args.prompt:
        options["prompt"] = args.prompt
    fast = args.fast
    try:
        card = get_card(args.model or (DEFAULT_MODEL if fast else "vqathinker-8b"))
        if fast and card.backend == "lmm":
            print(f"error: --fast explains with a fast model; {card.name!r} is a reasoning model", file=sys.stderr)
            return 2
        if not fast and card.backend != "lmm":
            print(f"error: {card.name!r} is a {card.backend} model; explain needs a reasoning model "
                  f"({', '.join(list_models(backend='lmm'))}), or --fast for the fast model's explanation",
                  file=sys.stderr)
            return 2
        if not fast:
            if args.frames:
                from .sampling.plan import SamplingConfig  # lazy: numpy
                card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(),
                                                                         "num_segments": args.frames}))
            try:
                family = args.runtime if args.runtime not in ("onnx", "torch") else None
                scorer = build_scorer(card, device=args.device, runtime=family, **options)
            except (WeightsNotFound, BackendUnavailable) as e:
                if args.checkpoint is not None or card.weights.get("checkpoint"):  # a named checkpoint: its error
                    raise
                from .backends.lmm.weights import resolve_checkpoint  # lazy: torch, safetensors
                try:  # only the Hub cache is looked at
                    resolve_checkpoint(None, card.weights.get("hub"), card.name)
                    found = True
                except (WeightsNotFound, BackendUnavailable):
                    found = False
                if found:  # there, but unusable: its error stands
                    raise
                extra = " and pip install 'vqametric[lmm]'" if isinstance(e, BackendUnavailable) else ""
                print(f"note: no checkpoint of the reasoning model {card.name!r} was found, so this is the fast "
                      f"model's explanation; for the reasoning model pass --checkpoint DIR (a downloaded checkpoint) "
                      f"or --checkpoint {card.weights.get('hub') or 'owner/name'} (downloads it){extra}; it needs a "
                      "GPU and about 16 GB of weights", file=sys.stderr)
                fast, card = True, get_card(DEFAULT_MODEL)
        if fast:
            scorer = build_scorer(card, device=args.device,
                                  runtime=args.runtime if args.runtime in ("onnx", "torch") else None)
    except (VQAMetricError, ValueError) as e:
        print(f"error: {cli_syntax(str(e))}", file=sys.stderr)
        return 1
    records, failed = [], 0
    for path in args.paths:
        try:
            _, (result,) = scorer.score([path], fps=args.fps)
            records.append({"ok": True, "result": result})
            failed += 0 if result.parse_ok else 1
        except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, never stops the batch
            failed += 1
            records.append({"ok": False, "source": path, "error": type(e).__name__, "message": cli_syntax(str(e))})
    if args.format == "json":
        out = [{**r["result"].to_dict(), **({"explanation": describe(r["result"])} if fast else {})} if r["ok"]
               else {k: r[k] for k in ("source", "error", "message")} for r in records]
        _write(json.dumps(out, indent=2, ensure_ascii=False) + "\n", args.output)
    elif fast:
        text = []
        for r in records:
            if not r["ok"]:
                text.append(_render_explanation(r))
                continue
            res = r["result"]
            text.append(f"{res.source}\n  score: {res.score:.3f} / 5  ({res.model} {res.model_version}, fast model)\n"
                        "  explanation:\n" + textwrap.fill(describe(res), 100, initial_indent="    ",
                                                           subsequent_indent="    ") + "\n\n")
        _write("".join(text), args.output)
    else:
        _write("".join(_render_explanation(r) for r in records), args.output)
    return 1 if failed else 0


def _render_explanation(record: dict[str, Any]) -> str:
    if not record["ok"]:
        return f"{record['source']}\n  FAILED: {record['error']}: {record['message']}\n\n"
    r = record["result"]
    gen = r.sampling.get("generation", {})
    lines = [r.source]
    if r.parse_ok:
        lines.append(f"  score: {r.score:.3f} / 5  ({r.model}, {gen.get('scoring', 'parsed')}"
                     f"{', %d answers' % gen['answers_parsed'] if gen.get('answers_parsed', 1) > 1 else ''})")
    else:
        lines.append(f"  score: PARSE FAILED ({gen.get('failure') or 'no answer'}); no score was produced")
    for name, value in r.dimensions.items():
        lines.append(f"  {name}: {value:g}")
    if r.text:
        lines.append("  reasoning:")
        lines.extend("    " + ln for ln in r.text.strip().splitlines())
    lines.append(f"  raw answer: {r.raw_answer!r}" if not r.parse_ok else "")
    return "\n".join(ln for ln in lines if ln) + "\n\n"


def _eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # lazy: eval's progress bar only

    from .eval import evaluate  # lazy: numpy, scipy and torch when scoring

    bar = tqdm(desc="evaluating", unit="video", file=sys.stderr, disable=True if args.quiet else None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)
    try:
        report = evaluate(args.model, args.manifest, args.device, args.runtime, progress)
    except VQAMetricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    if args.output:
        _write(json.dumps(report, indent=2) + "\n", args.output)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"{report['model']} {report['version']} on {report['scored']} video(s) of {args.manifest}: "
          f"SRCC {fmt(report['srcc'])}  PLCC {fmt(report['plcc'])} (logistic)  KRCC {fmt(report['krcc'])}")
    for f in report["failures"]:
        print(f"failed: {f['path']}: {f['error']}", file=sys.stderr)
    return 1 if report["failures"] else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqametric", description="No-reference video quality assessment.")
    p.add_argument("--version", action="version", version=f"vqametric {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="score video files on the 1-5 quality scale")
    s.add_argument("paths", nargs="+", help="video or image files")
    s.add_argument("--model", default=DEFAULT_MODEL, help="model name (see `vqametric models`) or head file path")
    s.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cpu)")
    s.add_argument("--runtime", choices=["onnx", "torch"], default=None, help="default: the model's")
    s.add_argument("--format", choices=["table", "json", "csv"], default="table")
    s.add_argument("--output", "-o", default=None, help="write results to this file instead of stdout")
    s.add_argument("--fps", type=float, default=None, help=argparse.SUPPRESS)
    s.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse frames above N pixels (default 36000000: 8K fits; or $VQAMETRIC_MAX_PIXELS)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar or failure lines on stderr")
    s.add_argument("--fail-below", type=float, default=None, metavar="X",
                   help="exit 1 when a clip scores below X (1-5); the clips are named on stderr")
    s.add_argument("--report", default=None, metavar="FILE.html",
                   help="also write a self-contained HTML report of the results (see `vqametric report`)")
    add_corpus_options(s)
    s.set_defaults(func=_score)

    e = sub.add_parser("explain", help="score with a reasoning model and show its explanation (or, with --fast or "
                                       "without a reasoning checkpoint, the fast model's timeline in words)")
    e.add_argument("paths", nargs="+", help="video or image files")
    e.add_argument("--model", default=None, help="model name (see `vqametric models`); default vqathinker-8b, "
                                                 f"or {DEFAULT_MODEL} with --fast")
    e.add_argument("--fast", action="store_true", help="explain from the fast model's timeline and attribution "
                                                       "(no reasoning model, no GPU)")
    e.add_argument("--checkpoint", default=None, help="checkpoint folder or Hugging Face Hub id (owner/name)")
    e.add_argument("--runtime", default=None, choices=["auto", "vqathinker", "qwen2.5-vl", "qwen3-vl", "onnx", "torch"],
                   help="reasoning models: the checkpoint's family (auto: read from its config.json; default: the "
                        "model's); fast models: onnx or torch")
    e.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    e.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"])
    e.add_argument("--load-in-8bit", action="store_true", help="int8 language model (CUDA + bitsandbytes)")
    e.add_argument("--prompt", choices=["overall", "dimensions"], default=None)
    e.add_argument("--samples", type=int, default=1, help="answers per video (>1 samples and averages)")
    e.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --samples > 1)")
    e.add_argument("--retries", type=int, default=0, help="extra sampled attempts when an answer does not parse")
    e.add_argument("--scoring", choices=["parsed", "expected"], default="parsed")
    e.add_argument("--frames", type=int, default=None, help="frames sampled per video (default: the model's)")
    e.add_argument("--max-new-tokens", type=int, default=1024)
    e.add_argument("--batch-size", type=int, default=1)
    e.add_argument("--format", choices=["text", "json"], default="text")
    e.add_argument("--output", "-o", default=None, help="write results to this file instead of stdout")
    e.add_argument("--fps", type=float, default=None, help=argparse.SUPPRESS)
    e.set_defaults(func=_explain)

    i = sub.add_parser("info", help="show video metadata without scoring")
    i.add_argument("paths", nargs="+")
    i.add_argument("--format", choices=["table", "json"], default="table")
    i.set_defaults(func=_info)

    d = sub.add_parser("demo", help="generate a sample clip and degraded copies, and score them")
    dm = d.add_mutually_exclusive_group()
    dm.add_argument("--model", default=DEFAULT_MODEL, help="model name or head file path")
    dm.add_argument("--untrained-head", action="store_true",
                    help="score with a randomly initialised head (pipeline check only; scores are meaningless)")
    d.add_argument("--device", default=None)
    d.add_argument("--runtime", choices=["onnx", "torch"], default=None)
    d.add_argument("--folder", default=None, help="where to write the clips (default: a temp folder)")
    d.set_defaults(func=_demo)

    e = sub.add_parser("eval", help="correlate a model's scores with the MOS of a manifest (SRCC, PLCC, KRCC)")
    e.add_argument("manifest", help="CSV or JSON Lines with path and mos (1-5) columns")
    e.add_argument("--model", default=DEFAULT_MODEL)
    e.add_argument("--device", default=None)
    e.add_argument("--runtime", choices=["onnx", "torch"], default=None)
    e.add_argument("--output", "-o", default=None, help="write the full report (per-video scores) as JSON")
    e.add_argument("--quiet", "-q", action="store_true")
    e.set_defaults(func=_eval)

    m = sub.add_parser("models", help="list the registered models")
    m.add_argument("--format", choices=["table", "json"], default="table")
    m.set_defaults(func=_models)

    register_train(sub)
    register_regression(sub)
    register_report(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
