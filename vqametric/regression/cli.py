"""``vqametric baseline create|check`` and ``vqametric compare`` (exit 0 pass, 1 regression, 2 error),
and ``vqametric rd`` (rate-distortion curves; exit 0, or 2 on an error)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli_rawyuv import extend
from ..errors import VQAMetricError
from ..registry import DEFAULT_MODEL
from ..tabular import format_table
from .baseline import load_records, make_baseline, model_identity, score_clips, write_json
from .compare import (DEFAULT_MAX_DROP, DEFAULT_MAX_SEGMENT_DROP, EXIT_ERROR, Report, Tolerances, check_model,
                      compare_records)
from .rd import load_rd_manifest, measure, plot_rd, rd_report, render_rd
from .report import describe_model, render_text, to_json, to_junit


def register_regression(sub: Any) -> None:
    """Add ``baseline`` (``create``, ``check``), ``compare`` and ``rd`` to the ``vqametric``
    subparsers, and the raw YUV options (``--size``, ``--pix-fmt``) to ``score``."""
    b = sub.add_parser("baseline", help="golden scores of clips: create a baseline, check clips against one")
    bsub = b.add_subparsers(dest="baseline_command", required=True)

    c = bsub.add_parser("create", help="score clips and store their golden scores")
    c.add_argument("clips", nargs="+", help="video files (stored by their path as given)")
    c.add_argument("--output", "-o", required=True, help="baseline JSON file to write")
    _model_options(c, "default: vqametric-fast")
    c.set_defaults(func=_create)

    k = bsub.add_parser("check", help="score clips and compare them with a baseline")
    k.add_argument("baseline", help="baseline JSON written by `vqametric baseline create`")
    k.add_argument("clips", nargs="*", help="video files, matched by path as given (default: every baseline clip)")
    _model_options(k, "default: the baseline's")
    _report_options(k)
    k.set_defaults(func=_check)

    m = sub.add_parser("compare", help="compare two result files (score --format json output or baselines)")
    m.add_argument("old", help="golden results: a baseline or `vqametric score --format json` output")
    m.add_argument("new", help="results to check, in either format")
    _report_options(m)
    m.set_defaults(func=_compare)

    r = sub.add_parser("rd", help="rate-distortion curves scored by vqametric: BD-rate, BD-quality, monotonicity")
    r.add_argument("manifest", help="CSV or JSON Lines: path, sequence, curve[, bitrate_kbps, reference]")
    r.add_argument("--anchor", default=None, help="the curve others are compared with (default: the first)")
    r.add_argument("--method", choices=["pchip", "akima", "cubic"], default="pchip",
                   help="Bjontegaard interpolation (default %(default)s)")
    r.add_argument("--reference", action="store_true",
                   help="also measure VMAF, PSNR and SSIM against each row's reference file (manifest column "
                        "'reference'; ffmpeg with libvmaf from imageio-ffmpeg)")
    r.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    r.add_argument("--plot", default=None, metavar="FILE", help="write RD curves as an image (matplotlib)")
    _model_options(r, "default: vqametric-fast")
    r.set_defaults(func=_rd)

    extend(sub)  # raw YUV options of `vqametric score`


def _model_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--model", default=None, help=f"model name or head file ({default})")
    p.add_argument("--runtime", choices=["onnx", "torch"], default=None, help=f"({default})")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cpu)")


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                   help="largest allowed fall of a clip's score (default %(default)g: the model is deterministic)")
    p.add_argument("--max-segment-drop", type=float, default=DEFAULT_MAX_SEGMENT_DROP,
                   help="largest allowed fall of any segment's score (default %(default)g)")
    p.add_argument("--relative", action="store_true", help="tolerances are fractions of the golden score")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    p.add_argument("--junit", default=None, metavar="FILE", help="write the report as JUnit XML")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _create(args: argparse.Namespace) -> int:
    from ..functional import get_scorer  # lazy: torch

    try:
        scorer = get_scorer(args.model or DEFAULT_MODEL, args.device, args.runtime)
        records = score_clips(scorer, args.clips)
        doc = make_baseline(records)
    except VQAMetricError as e:
        return _error(str(e))
    write_json(doc, args.output)
    rows = [[r["path"], f"{r['score']:.4f}", str(len(r["timeline"])), r["file_sha256"][:12]] for r in records]
    print(format_table(rows, ["clip", "score", "segments", "sha256"]))
    print(f"wrote {args.output}: {len(records)} clip(s), {describe_model(model_identity(scorer))}")
    return 0


def _tolerances(args: argparse.Namespace) -> Tolerances:
    try:
        return Tolerances(args.max_drop, args.max_segment_drop, args.relative)
    except ValueError as e:
        raise VQAMetricError(str(e)) from e


def _finish(report: Report, title: str, args: argparse.Namespace) -> int:
    sys.stdout.write(render_text(report, title))
    for path, text in ((args.json, to_json(report) if args.json else ""),
                       (args.junit, to_junit(report) if args.junit else "")):
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return report.exit_code


def _check(args: argparse.Namespace) -> int:
    from ..functional import get_scorer  # lazy: torch

    try:
        tol = _tolerances(args)
        golden = load_records(args.baseline)
        recorded = check_model(golden, {}, args.baseline)
        model = args.model or recorded.get("name")
        if model is None:
            return _error(f"{args.baseline} records no model; pass --model")
        scorer = get_scorer(model, args.device, args.runtime or recorded.get("runtime"))
        identity = check_model(golden, model_identity(scorer), args.baseline)
    except VQAMetricError as e:
        return _error(str(e))
    clips = args.clips or [r["path"] for r in golden]
    report = compare_records(golden, score_clips(scorer, clips), tol, identity)
    return _finish(report, f"baseline {args.baseline}", args)


def _compare(args: argparse.Namespace) -> int:
    try:
        tol = _tolerances(args)
        old, new = load_records(args.old), load_records(args.new)
        identity = check_model(old, new, args.old, args.new)
    except VQAMetricError as e:
        return _error(str(e))
    return _finish(compare_records(old, new, tol, identity), f"{args.old} -> {args.new}", args)


def _rd(args: argparse.Namespace) -> int:
    from ..functional import get_scorer  # lazy: torch

    try:
        rows = load_rd_manifest(args.manifest)
        scorer = get_scorer(args.model or DEFAULT_MODEL, args.device, args.runtime)
        points = measure(rows, scorer, full_reference=args.reference)
        report = rd_report(points, args.anchor, args.method)
        if args.plot:
            plot_rd(points, args.plot)
    except Exception as e:  # noqa: BLE001 - any failure (manifest, a file, a package) ends the run with its reason
        return _error(f"{type(e).__name__}: {e}")
    sys.stdout.write(render_rd(report))
    if args.json:
        write_json(report, args.json)
    return 0
