"""Rate-distortion analysis with vqametric scores as the quality axis: BD-rate, BD-score, monotonicity.

A manifest (CSV or JSON Lines) has one row per encode: ``path``, ``sequence`` (the source it was
made from), ``curve`` (the encoder configuration: one RD curve per sequence and curve) and
optionally ``bitrate_kbps`` (default: file size * 8 / duration) and ``reference`` (the source, for
VMAF, PSNR and SSIM with ``measure(..., full_reference=True)``). Each curve is compared with the
anchor curve of the same sequence by the Bjontegaard delta (the ``bjontegaard`` package, extra
``rd``): ``bd_rate`` is the average rate change at equal score in percent (negative: the test
curve needs fewer bits), ``bd_quality`` the average quality change at equal rate (points of the
1-5 score, or the full-reference metric's unit), for the score and each full-reference metric.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendUnavailable, InvalidVideoInput
from ..fullref import file_metrics
from ..tabular import csv_rows, format_table, jsonl_rows, manifest_format
from .baseline import file_sha256

BD_METHODS = ("akima", "pchip", "cubic")


@dataclass
class RDPoint:
    """One encode: ``bitrate_kbps`` > 0, ``score`` on the 1-5 scale, ``metrics`` the full-reference
    ones measured (``vmaf`` 0-100, ``psnr_y`` dB, ``ssim`` 0-1)."""

    sequence: str
    curve: str
    path: str
    bitrate_kbps: float
    score: float
    file_sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def quality(self, metric: str) -> float:
        return self.score if metric == "score" else self.metrics[metric]


def load_rd_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows ``{"path", "sequence", "curve", "bitrate_kbps" (float or None), "reference" (path or
    None)}``; relative paths are resolved against the manifest's folder. :class:`InvalidVideoInput`
    names the bad line."""
    p = Path(path)
    rows = csv_rows(p) if manifest_format(p, None) == "csv" else jsonl_rows(p)
    out = []
    for line, row in rows:
        missing = [k for k in ("path", "sequence", "curve") if not row.get(k)]
        if missing:
            raise InvalidVideoInput(f"{p}:{line}: no {', '.join(missing)}; an RD manifest row needs path, "
                                    "sequence and curve (bitrate_kbps is optional)")
        rate = row.get("bitrate_kbps")
        try:
            rate = None if rate in (None, "") else float(rate)
        except (TypeError, ValueError):
            raise InvalidVideoInput(f"{p}:{line}: bitrate_kbps {rate!r} is not a number") from None
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise InvalidVideoInput(f"{p}:{line}: bitrate_kbps must be a positive number, got {rate:g}")
        where = lambda f: None if not f else str(f) if os.path.isabs(str(f)) else str(p.parent / str(f))  # noqa: E731
        out.append({"path": where(row["path"]), "sequence": str(row["sequence"]), "curve": str(row["curve"]),
                    "bitrate_kbps": rate, "reference": where(row.get("reference"))})
    if not out:
        raise InvalidVideoInput(f"{p} holds no rows")
    return out


def measure(rows: Sequence[dict[str, Any]], scorer: Any, full_reference: bool = False) -> list[RDPoint]:
    """Score every row's file; the rate is the row's or the file's size over its duration. With
    ``full_reference``, also VMAF, PSNR and SSIM against each row's ``reference``."""
    if full_reference:
        lacking = [r["path"] for r in rows if not r["reference"]]
        if lacking:
            raise InvalidVideoInput(f"{len(lacking)} row(s) have no reference (first: {lacking[0]}); add a "
                                    "reference column with each encode's source")
    points = []
    for row in rows:
        _, (result,) = scorer.score([row["path"]])
        rate = row["bitrate_kbps"]
        if rate is None:
            duration = result.clip.get("duration") or 0.0
            if duration <= 0:
                raise InvalidVideoInput(f"{row['path']}: unknown duration; give its bitrate_kbps in the manifest")
            rate = os.path.getsize(row["path"]) * 8 / 1000 / duration
        metrics = {}
        if full_reference:
            from ..io import open_clip  # lazy: av (decoding)
            with open_clip(row["reference"]) as ref:
                size = (ref.info.width, ref.info.height)
            metrics = file_metrics(row["path"], row["reference"], size)
        points.append(RDPoint(row["sequence"], row["curve"], row["path"], float(rate), float(result.score),
                              file_sha256(row["path"]), metrics))
    return points


def curves(points: Sequence[RDPoint]) -> dict[tuple[str, str], list[RDPoint]]:
    """``(sequence, curve)`` -> its points by increasing rate (manifest order of first appearance)."""
    out: dict[tuple[str, str], list[RDPoint]] = defaultdict(list)
    for p in points:
        out[(p.sequence, p.curve)].append(p)
    return {k: sorted(v, key=lambda p: p.bitrate_kbps) for k, v in out.items()}


def monotonicity(points: Sequence[RDPoint], metric: str = "score") -> list[dict[str, Any]]:
    """Per curve: ``steps`` (rate-ordered neighbours) and ``violations`` (steps where more bits
    gave a lower ``metric``)."""
    return [{"sequence": s, "curve": c, "metric": metric, "points": len(pts), "steps": len(pts) - 1,
             "violations": sum(b.quality(metric) < a.quality(metric) for a, b in zip(pts, pts[1:]))}
            for (s, c), pts in curves(points).items()]


def bd_deltas(points: Sequence[RDPoint], anchor: str | None = None, method: str = "pchip",
              metric: str = "score") -> list[dict[str, Any]]:
    """BD-rate (%) and BD-quality (in ``metric``'s unit: ``score``, or a key of the points'
    ``metrics``) of every curve against ``anchor`` (default: the first curve of the manifest) per
    sequence; ``None`` with a ``note`` where they cannot be computed, and a
    ``note`` where the curves share under 75% of their quality or rate range (``overlap: score 51%``).

    ``method``: the interpolation. PCHIP (the default, as in the JCT-VC/JVET common test
    conditions) keeps a rising curve rising; Akima and cubic can swing between the close,
    nearly flat points a saturating quality score gives (measured: Akima +25.7%, PCHIP -25.8% on
    the same two curves, where the test curve was better everywhere)."""
    try:
        import bjontegaard as bd  # optional: bjontegaard (extra rd)
    except ImportError as e:
        raise BackendUnavailable("BD-rate needs the bjontegaard package: pip install 'vqametric[rd]'") from e
    if method not in BD_METHODS:
        raise ValueError(f"method must be one of {BD_METHODS}, got {method!r}")
    by_curve = curves(points)
    anchor = anchor or points[0].curve
    if anchor not in {c for _, c in by_curve}:
        raise InvalidVideoInput(f"no curve named {anchor!r} in the manifest (curves: "
                                f"{', '.join(sorted({c for _, c in by_curve}))})")
    out = []
    for (seq, curve), pts in by_curve.items():
        ref = by_curve.get((seq, anchor))
        if curve == anchor:
            continue
        row: dict[str, Any] = {"sequence": seq, "curve": curve, "anchor": anchor, "metric": metric,
                               "bd_rate": None, "bd_quality": None, "note": None}
        out.append(row)
        if ref is None:
            row["note"] = f"sequence {seq!r} has no {anchor!r} curve"
            continue
        bad = [name for name, c in ((anchor, ref), (curve, pts)) if len(c) < 2 or any(
            b.quality(metric) <= a.quality(metric) for a, b in zip(c, c[1:]))]
        if bad:
            row["note"] = f"{metric} does not rise strictly with rate on {' and '.join(bad)}"
            continue
        r0, q0 = [p.bitrate_kbps for p in ref], [p.quality(metric) for p in ref]
        r1, q1 = [p.bitrate_kbps for p in pts], [p.quality(metric) for p in pts]
        notes = []
        for key, fn, axis in (("bd_rate", bd.bd_rate, metric), ("bd_quality", bd.bd_psnr, "rate")):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = float(fn(r0, q0, r1, q1, method=method, require_matching_points=False, min_overlap=0.75))
            row[key] = value if math.isfinite(value) else None
            for w in caught:  # the package warns below 75% overlap, and when there is none
                share = re.search(r"'([\d.]+)'", str(w.message))
                notes.append(f"{axis} {float(share.group(1)):.0f}%" if share else f"no {axis} overlap")
        row["note"] = ("overlap: " + ", ".join(notes)) if notes else None
    return out


def rd_report(points: Sequence[RDPoint], anchor: str | None = None, method: str = "pchip") -> dict[str, Any]:
    """Points, monotonicity and BD deltas (the score first, then each full-reference metric) as
    JSON-able data."""
    metrics = ["score"] + sorted({k for p in points for k in p.metrics})
    return {"kind": "vqametric-rd-report", "schema_version": 1, "method": method,
            "points": [asdict(p) for p in points],
            "monotonicity": [m for k in metrics for m in monotonicity(points, k)],
            "bd": [d for k in metrics for d in bd_deltas(points, anchor, method, k)]}


def render_rd(report: dict[str, Any]) -> str:
    fmt = lambda x, f, unit="": "n/a" if x is None else format(x, f) + unit  # noqa: E731
    mono = [[m["sequence"], m["curve"], m["metric"], str(m["points"]), f"{m['violations']} of {m['steps']}"]
            for m in report["monotonicity"]]
    bd = [[d["sequence"], d["curve"], d["anchor"], d["metric"], fmt(d["bd_rate"], "+.2f", "%"),
           fmt(d["bd_quality"], "+.4f"), d["note"] or ""] for d in report["bd"]]
    parts = [format_table(mono, ["sequence", "curve", "metric", "points", "falls as rate rises"])]
    if bd:
        parts.append(format_table(bd, ["sequence", "curve", "anchor", "metric", f"BD-rate ({report['method']})",
                                     "BD-quality", "note"]))
    return "\n\n".join(parts) + "\n"


def plot_rd(points: Sequence[RDPoint], path: str | os.PathLike) -> None:
    """One panel per sequence: score against bitrate (log axis), one line per curve."""
    try:
        import matplotlib  # optional: matplotlib (extra rd)
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # optional: matplotlib (the rd extra)
    except ImportError as e:
        raise BackendUnavailable("RD plots need matplotlib: pip install 'vqametric[rd]'") from e
    by_curve = curves(points)
    seqs = list(dict.fromkeys(s for s, _ in by_curve))
    fig, axes = plt.subplots(1, len(seqs), figsize=(4.5 * len(seqs), 3.6), squeeze=False)
    for ax, seq in zip(axes[0], seqs):
        for (s, curve), pts in by_curve.items():
            if s == seq:
                ax.plot([p.bitrate_kbps for p in pts], [p.score for p in pts], "o-", label=curve)
        ax.set_xscale("log")
        ax.set(title=seq, xlabel="bitrate (kbit/s)", ylabel="vqametric score (1-5)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
