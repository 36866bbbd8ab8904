"""``vqametric score``: the command, for one clip or millions.

:func:`add_corpus_options` adds the corpus options to the ``score`` subparser and
:func:`run_score` runs the command. Exit status: 0 when every clip was scored, 1 when any failed
(or, with ``--fail-below X``, scored below X), 2 for usage errors, 130 after SIGINT (Ctrl-C) and
143 after SIGTERM. A signal stops the run cleanly: no new clip is started, the clips in flight
are finished (a second signal drops them), the output file is closed valid and the summary printed.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any, Callable, TextIO

from ..errors import SamplingError, VQAMetricError
from ..registry import get_card
from ..report import write_report
from .writer import RowWriter, format_for

# .api, .inputs, .runner and .summary are imported when the command runs: adding the options to
# the parser (every `vqametric` invocation, --version included) stays light.

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def add_corpus_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the corpus options to the ``score`` subparser (those it does not have yet)."""
    have = parser._option_string_actions  # noqa: SLF001 - argparse offers no public lookup
    for action in parser._actions:  # noqa: SLF001
        if action.dest == "paths" and not action.option_strings:
            action.nargs = "*"  # a manifest or stdin may name every clip
            action.help = "video or image files, folders (searched recursively), or - for paths on stdin"
    if "--format" in have and have["--format"].choices is not None and "jsonl" not in have["--format"].choices:
        have["--format"].choices = list(have["--format"].choices) + ["jsonl"]

    def add(*names: str, **kw: Any) -> None:
        if not any(n in have for n in names):
            parser.add_argument(*names, **kw)

    parser.set_defaults(corpus_parser=parser)
    g = parser.add_argument_group("corpus")
    add("--format", choices=["table", "json", "csv", "jsonl"], default="table")
    add("--output", "-o", default=None, help="write results to this file instead of stdout")
    add("--quiet", "-q", action="store_true", help="no progress bar or per-file lines (the summary stays)")
    add("--fps", type=float, default=None, help=argparse.SUPPRESS)
    add("--max-pixels", type=int, default=None, metavar="N", help="refuse frames above N pixels")
    add("--fail-below", type=float, default=None, metavar="X",
        help="exit 1 when a clip scores below X (1-5); the clips are named on stderr")
    g.add_argument("--glob", default=None, metavar="PATTERN",
                   help="files to take from folders (default: common video and image extensions)")
    g.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="CSV with a path column, JSON Lines with a path key, or one path a line (repeatable)")
    g.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="worker processes, or Ray actors with --engine ray (default 1: score in this process)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process or --jobs worker processes (default); ray: a pool of --jobs "
                        'Ray Data actors (pip install "vqametric[ray]")')
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --engine ray: the Ray cluster (default: $RAY_ADDRESS, else a local Ray for the run)")
    g.add_argument("--resume", action="store_true",
                   help="skip clips already in --output (same path, size and modification time)")
    g.add_argument("--retry-failed", action="store_true", help="with --resume: score failed clips again")
    g.add_argument("--keep-above", type=float, default=None, metavar="X", help="keep clips scoring X or more")
    g.add_argument("--keep-below", type=float, default=None, metavar="X", help="keep clips scoring below X")
    g.add_argument("--keep-list", default=None, metavar="FILE",
                   help="write the kept paths here, one a line (default: stdout)")
    g.add_argument("--segments", type=int, default=None, metavar="N", help="segments sampled per clip")
    g.add_argument("--frames-per-segment", type=int, default=None, metavar="K",
                   help="frames per segment (must match the model's head)")
    return parser


def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]) + "\n"


def render_table(rows: list[dict[str, Any]]) -> str:
    cols = ["path", "score", "dominant_distortion", "model", "frames", "seconds"]
    out = []
    for r in rows:
        if r.get("status") == "ok":
            out.append([r["path"], f"{r['score']:.4f}", r.get("dominant_distortion") or "", r.get("model") or "",
                        "" if r.get("num_frames") is None else str(r["num_frames"]), f"{r.get('seconds') or 0:.3f}"])
        else:
            out.append([r["path"], "FAILED", r.get("error") or "", "", "", ""])
    return _fmt_table(out, cols)


def kept(row: dict[str, Any], above: float | None, below: float | None) -> bool:
    """Whether a row passes ``--keep-above X`` (score >= X) and ``--keep-below X`` (score < X)."""
    if row.get("status") != "ok" or row.get("score") is None:
        return False
    return (above is None or row["score"] >= above) and (below is None or row["score"] < below)


def _usage(args: argparse.Namespace, message: str) -> int:
    """A usage error: the parser's ``error`` (usage line, exit status 2) when the options came from
    :func:`add_corpus_options`, else the message and 2."""
    parser = getattr(args, "corpus_parser", None)
    if parser is not None:
        parser.error(message)
    print(f"vqametric score: error: {message}", file=sys.stderr)
    return 2


class _Signals:
    """SIGINT/SIGTERM -> ``run.stop()``; a second signal -> ``run.abandon()`` (and, scoring in this
    process, interrupts the clip in flight). Restores the previous handlers on exit."""

    def __init__(self, run: Any):
        self.run, self.received, self.previous = run, None, {}

    def __enter__(self) -> "_Signals":
        for s in EXIT_CODES:
            try:
                self.previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
            self.run.stop()
            return
        self.run.abandon()
        if self.run.in_process:
            raise _Abandoned()

    def __exit__(self, *exc: Any) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)


class _Abandoned(BaseException):
    """A second signal while a clip was scored in this process: drop it."""


def run_score(args: argparse.Namespace, scorer_factory: Callable | None = None,
              stdin: TextIO | None = None) -> int:
    """The whole ``vqametric score`` command. ``scorer_factory(model, device, runtime)`` builds a
    scorer (default :func:`vqametric.functional.get_scorer`; picklable for ``--jobs`` above 1)."""
    from .api import CorpusRun  # lazy: keeps building the parser light (see above)
    from .inputs import InputError, collect_paths  # lazy: as .api

    if scorer_factory is None:
        from ..functional import get_scorer as scorer_factory  # heavy: torch
    quiet = bool(getattr(args, "quiet", False))
    output = getattr(args, "output", None)
    fmt = getattr(args, "format", "table") or "table"
    jobs = getattr(args, "jobs", None)
    jobs = 1 if jobs is None else int(jobs)
    engine = getattr(args, "engine", None) or "local"
    ray_address = getattr(args, "ray_address", None)
    above, below = getattr(args, "keep_above", None), getattr(args, "keep_below", None)
    filtering = above is not None or below is not None
    keep_list = getattr(args, "keep_list", None)
    stream_fmt = format_for(output, fmt) if output else None
    if jobs < 1:
        return _usage(args, f"--jobs must be at least 1, got {jobs}")
    if ray_address and engine != "ray":
        return _usage(args, "--ray-address needs --engine ray")
    if getattr(args, "resume", False) and stream_fmt is None:
        return _usage(args, "--resume needs --output FILE.jsonl, .csv or .json (the file to resume)")
    if keep_list and not filtering:
        return _usage(args, "--keep-list needs --keep-above or --keep-below")
    sampling = {k: v for k, v in (("num_segments", getattr(args, "segments", None)),
                                  ("frames_per_segment", getattr(args, "frames_per_segment", None))) if v is not None}
    try:
        paths = collect_paths(getattr(args, "paths", None) or [], getattr(args, "glob", None),
                              getattr(args, "manifest", None) or [], stdin=stdin)
    except InputError as e:
        return _usage(args, str(e))
    run = None
    try:
        if jobs > 1 or engine != "local":
            get_card(getattr(args, "model", None) or "vqametric-fast")  # fail early, before any worker starts
        run = CorpusRun(paths, model=args.model, sampling=sampling or None, jobs=jobs, output=output if stream_fmt
                        else None, resume=getattr(args, "resume", False), format=stream_fmt,
                        device=getattr(args, "device", None), runtime=getattr(args, "runtime", None),
                        fps=getattr(args, "fps", None), max_pixels=getattr(args, "max_pixels", None),
                        scorer_factory=scorer_factory, retry_failed=getattr(args, "retry_failed", False),
                        engine=engine, ray_address=ray_address)
        run.prepare()  # load the model or connect to Ray now, before the signal handlers are set
        run.open()  # create (or, resuming, rewrite) the output file now: an unwritable path fails here
    except OSError as e:
        if run is not None:
            run.close()  # ends the Ray the run may have started
        print(f"error: cannot write {e.filename or output}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while the model loads: nothing was scored, the output is untouched
        print("interrupted by SIGINT before scoring started", file=sys.stderr)
        return EXIT_CODES[signal.SIGINT]
    except (ValueError, VQAMetricError) as e:
        if isinstance(e, SamplingError) or (isinstance(e, ValueError) and not isinstance(e, VQAMetricError)):
            return _usage(args, str(e))
        print(f"error: {e}", file=sys.stderr)
        return 1
    return _execute(run, args, quiet, output, fmt, stream_fmt, filtering, above, below, keep_list)


def _execute(run: Any, args: argparse.Namespace, quiet: bool, output: str | None, fmt: str,
             stream_fmt: str | None, filtering: bool, above: float | None, below: float | None,
             keep_list: str | None) -> int:
    from tqdm import tqdm  # lazy: keeps building the parser light (see above)

    from .runner import WorkersFailed  # lazy: as tqdm
    from .summary import Summary  # lazy: as tqdm

    summary = Summary(skipped=len(run.skipped))
    try:
        keep_out = open(keep_list, "w", encoding="utf-8") if keep_list else (sys.stdout if filtering else None)
    except OSError as e:
        run.close()
        print(f"error: cannot write {keep_list}: {e.strerror or e}", file=sys.stderr)
        return 1
    stdout_rows = None
    if output is None and keep_out is not sys.stdout:
        if fmt in ("csv", "jsonl"):
            stdout_rows = RowWriter(None, fmt, stream=sys.stdout)  # streamed to stdout
    # rows are kept in memory only for what needs them all at the end: a table or JSON array, the report
    table_out = output is None and keep_out is not sys.stdout and fmt in ("table", "json")
    table_file = bool(output and stream_fmt is None)
    report = getattr(args, "report", None)
    threshold = getattr(args, "fail_below", None)
    collected: list[dict[str, Any]] = []
    final_rows: list[dict[str, Any]] = list(run.skipped) if report else []
    low = [r for r in run.skipped if _is_low(r, threshold)]
    bar = tqdm(total=len(run.todo), desc="scoring", unit="clip", file=sys.stderr,
               disable=True if quiet or len(run.todo) < 2 else None)

    def keep(row: dict[str, Any]) -> None:
        if keep_out is not None and kept(row, above, below):
            keep_out.write(row["path"] + "\n")
            keep_out.flush()

    for r in run.skipped:
        keep(r)
    failure = None
    with _Signals(run) as sig:
        try:
            for row in run:
                summary.add(row)
                if report:
                    final_rows.append(row)
                if table_out or table_file:
                    collected.append(row)
                if _is_low(row, threshold):
                    low.append(row)
                if stdout_rows is not None:
                    stdout_rows.write(row)
                keep(row)
                bar.update(1)
                if row["status"] != "ok" and not quiet:
                    bar.write(f"failed: {row['path']}: {row['error']}: {row['message']}", file=sys.stderr)
        except _Abandoned:
            pass
        except WorkersFailed as e:
            failure = str(e)
        except OSError as e:  # the output could not be written (disk full ...): the rows so far stay
            failure = f"cannot write {e.filename or output or 'the results'}: {e.strerror or e}"
        finally:
            run.close()
            bar.close()
            if stdout_rows is not None:
                stdout_rows.close()
            if keep_list and keep_out is not None:
                keep_out.close()
        received = sig.received
    if collected:
        order = {p: i for i, p in enumerate(run.paths)}
        collected.sort(key=lambda r: order.get(r["path"], len(order)))  # input order, whatever the workers did
    if table_out:
        sys.stdout.write(render_table(collected) if fmt == "table" else json.dumps(collected, indent=2) + "\n")
    elif table_file:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(render_table(collected))
    if received is not None:
        summary.interrupted = received.name
    if report:
        print(f"report: {write_report(final_rows, report)}", file=sys.stderr)
    if failure:
        print(f"error: {failure}", file=sys.stderr)
    if summary.scored + summary.skipped > 1 or summary.failed or summary.warnings or received is not None or failure:
        print(summary.render(), file=sys.stderr)  # one clip that scored cleanly needs no summary
    _name_low(low, threshold)
    if received is not None:
        return EXIT_CODES[received]
    if failure or low or summary.failed or any(r.get("status") != "ok" for r in run.skipped):
        return 1
    return 0


def _is_low(row: dict[str, Any], threshold: float | None) -> bool:
    """Whether ``row`` scored below ``--fail-below``'s ``threshold``."""
    return threshold is not None and row.get("status") == "ok" and row["score"] < threshold


def _name_low(low: list[dict[str, Any]], threshold: float | None) -> None:
    """Name the rows scoring below ``threshold`` on stderr (as ``--fail-below`` reports them)."""
    for r in low:
        print(f"below {threshold:g}: {r['path']}: {r['score']:.4f}", file=sys.stderr)
    if low:
        print(f"{len(low)} clip(s) scored below {threshold:g}", file=sys.stderr)
