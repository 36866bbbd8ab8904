"""``vqametric report``: the subcommand (registered by :func:`register_report`)."""
from __future__ import annotations

import argparse
import sys

from ..errors import VQAMetricError
from .load import read_inputs
from .page import render
from .thumbs import thumbnails


def _report(args: argparse.Namespace) -> int:
    try:
        rows, rd = read_inputs(args.inputs)
    except VQAMetricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    thumb = None if args.no_thumbnails else thumbnails
    text = render(rows, thumb, rd, args.title, args.inputs)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    failed = sum(e.status != "ok" for e in rows)
    if not args.quiet:
        print(f"wrote {args.output}: {len(rows)} clip(s), {failed} failure(s)"
              + (f", {len(rd)} RD report(s)" if rd else ""), file=sys.stderr)
    return 0


def register_report(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` to the subcommands of ``vqametric``."""
    r = sub.add_parser("report", help="write a self-contained HTML report of scoring results")
    r.add_argument("inputs", nargs="+", metavar="RESULTS",
                   help="JSON from 'vqametric score --format json', JSON Lines (one result per line), "
                        "or JSON from 'vqametric rd --json' (RD curves and BD-rate tables)")
    r.add_argument("--output", "-o", required=True, help="the HTML file to write")
    r.add_argument("--no-thumbnails", action="store_true", help="do not decode frames of the source files")
    r.add_argument("--title", default="vqametric report")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=_report)
