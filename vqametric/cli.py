"""Command line: ``vqametric score|info|models|demo``.

``vqametric score a.mp4 b.mkv --format json --output scores.json`` scores each file; a file that
fails is reported with its reason and the others go on. Exit status: 0 when every file was scored,
1 when any failed, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any, Sequence

from . import __version__
from .errors import VQAMetricError
from .registry import DEFAULT_MODEL, get_card, list_models


def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .functional import get_scorer

    try:
        scorer = get_scorer(args.model, args.device, args.runtime)
    except VQAMetricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    records: list[dict[str, Any]] = []
    failed = 0
    bar = tqdm(args.paths, desc="scoring", unit="video", file=sys.stderr,
               disable=True if args.quiet or len(args.paths) < 2 else None)
    for path in bar:
        try:
            _, (result,) = scorer.score([path], fps=args.fps)
            records.append({"ok": True, "result": result})
        except (VQAMetricError, OSError, RuntimeError, ValueError) as e:
            failed += 1
            records.append({"ok": False, "source": path, "error": type(e).__name__, "message": str(e)})
            if not args.quiet:
                bar.write(f"failed: {path}: {type(e).__name__}: {e}", file=sys.stderr)
    _write(_render_scores(records, args.format), args.output)
    if failed and not args.quiet:
        print(f"{failed} of {len(args.paths)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _render_scores(records: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        out = [r["result"].to_dict() if r["ok"] else {k: r[k] for k in ("source", "error", "message")}
               for r in records]
        return json.dumps(out, indent=2) + "\n"
    cols = ["source", "score", "dominant_distortion", "model", "frames", "seconds", "error"]
    rows = []
    for r in records:
        if r["ok"]:
            res = r["result"]
            rows.append([res.source, f"{res.score:.4f}", res.dominant_distortion or "", res.model,
                         str(res.clip.get("num_frames", "")), f"{res.timings.get('total', 0.0):.3f}", ""])
        else:
            rows.append([r["source"], "", "", "", "", "", f"{r['error']}: {r['message']}"])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue()
    table = [r[:-1] if not r[-1] else [r[0], "FAILED", r[-1].split(":")[0], "", "", ""] for r in rows]
    return _fmt_table(table, cols[:-1]) + "\n"


def _info(args: argparse.Namespace) -> int:
    from .io import open_clip

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
    rows = [[c["name"], c["backend"], c["version"], ",".join(c["runtimes"]) or "(weights missing)",
             c["description"]] for c in cards]
    print(_fmt_table(rows, ["name", "backend", "version", "runtimes", "description"]) if rows
          else "no models registered")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from .demo import make_demo_clips
    from .functional import get_scorer

    folder = args.folder or os.path.join(tempfile.gettempdir(), "vqametric-demo")
    print(f"writing a sample clip and degraded copies to {folder} ...", file=sys.stderr)
    clips = make_demo_clips(folder)
    try:
        if args.untrained_head:
            import torch

            from .backends import FastHead, build_scorer
            torch.manual_seed(0)
            card = get_card(DEFAULT_MODEL, name="untrained-head", version="random-init")
            scorer = build_scorer(card, device=args.device, head=FastHead().eval())
            print("NOTE: --untrained-head scores with a randomly initialised head of the default architecture: "
                  "this exercises the whole pipeline, but the scores are NOT quality estimates.", file=sys.stderr)
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
    print(_fmt_table(rows, ["clip", "score (1-5)", "dominant distortion", "top severities", "seconds"]))
    return 0


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
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar or failure lines on stderr")
    s.set_defaults(func=_score)

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

    m = sub.add_parser("models", help="list the registered models")
    m.add_argument("--format", choices=["table", "json"], default="table")
    m.set_defaults(func=_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
