"""Compare new scores with golden ones: per-clip and aggregate deltas against tolerances.

Exit codes of the report: 0 every clip within tolerance, 1 a regression, 2 an error (a clip that
failed to score, clips that do not match the baseline, or a baseline of another model).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import InvalidBaseline

# Run-to-run spread of the shipped ONNX model is 0 (docs/regression.md); the default tolerance only
# leaves room for float noise from other ONNX Runtime builds or thread counts.
DEFAULT_MAX_DROP = 1e-4
DEFAULT_MAX_SEGMENT_DROP = 1e-4

EXIT_PASS, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Tolerances:
    """Largest allowed drop of the clip score and of any segment score: absolute points on the 1-5
    scale, or fractions of the golden score with ``relative=True``. Rises always pass."""

    max_drop: float = DEFAULT_MAX_DROP
    max_segment_drop: float = DEFAULT_MAX_SEGMENT_DROP
    relative: bool = False

    def __post_init__(self) -> None:
        for name in ("max_drop", "max_segment_drop"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    def drop(self, old: float, new: float) -> float:
        """How far ``new`` fell below ``old``, in the tolerance's unit (negative for a rise)."""
        return (old - new) / abs(old) if self.relative and old else old - new


@dataclass
class ClipDelta:
    """One clip's comparison. ``status``: ``"pass"``, ``"regression"`` or ``"error"``;
    ``score_delta`` = new - old (points); ``worst_segment`` indexes the segment with the lowest
    ``new - old`` and ``worst_segment_delta`` is that difference."""

    path: str
    status: str
    old_score: float | None = None
    new_score: float | None = None
    score_delta: float | None = None
    worst_segment: int | None = None
    worst_segment_delta: float | None = None
    file_changed: bool | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Every clip's delta, the clips that could not be matched, the model and the tolerances."""

    clips: list[ClipDelta]
    tolerances: Tolerances
    model: dict[str, Any]
    not_in_baseline: list[str] = field(default_factory=list)
    not_given: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.not_in_baseline or self.not_given or any(c.status == "error" for c in self.clips):
            return EXIT_ERROR
        return EXIT_REGRESSION if any(c.status == "regression" for c in self.clips) else EXIT_PASS

    @property
    def status(self) -> str:
        return {EXIT_PASS: "pass", EXIT_REGRESSION: "regression", EXIT_ERROR: "error"}[self.exit_code]

    def aggregate(self) -> dict[str, Any]:
        """Counts and the mean / lowest score delta and the lowest segment delta over compared clips."""
        done = [c for c in self.clips if c.score_delta is not None]
        seg = [c.worst_segment_delta for c in done if c.worst_segment_delta is not None]
        count = lambda s: sum(c.status == s for c in self.clips)  # noqa: E731
        return {"clips": len(self.clips), "passed": count("pass"), "regressed": count("regression"),
                "errors": count("error"),
                "mean_score_delta": sum(c.score_delta for c in done) / len(done) if done else None,
                "min_score_delta": min((c.score_delta for c in done), default=None),
                "min_segment_delta": min(seg, default=None)}


def check_model(old: Sequence[dict[str, Any]], new: dict[str, Any] | Sequence[dict[str, Any]],
                old_name: str = "the baseline", new_name: str = "the new results") -> dict[str, Any]:
    """The one model identity of ``old`` records; :class:`InvalidBaseline` unless it is the model
    of ``new`` (an identity or records): same name and version, and same weights hash and runtime
    where both sides know them."""
    def identity(records, name):
        ids = {tuple(sorted((r.get("model") or {}).items())) for r in records if "error" not in r}
        if len(ids) > 1:
            raise InvalidBaseline(f"{name} mixes results of several models: "
                                  + "; ".join(_describe(dict(i)) for i in sorted(ids)))
        return dict(next(iter(ids))) if ids else {}
    mine = identity(old, old_name)
    theirs = new if isinstance(new, dict) else identity(new, new_name)
    if not mine or not theirs:
        return mine or theirs
    for key in ("name", "version", "runtime", "weights_sha256"):
        a, b = mine.get(key), theirs.get(key)
        if a is not None and b is not None and a != b:
            raise InvalidBaseline(
                f"{old_name} was made with {_describe(mine)}, but the scores to compare come from "
                f"{_describe(theirs)} ({key} differs); scores of different models or weights are not "
                "comparable: recreate the baseline with `vqametric baseline create` (or pass the "
                "baseline's model with --model/--runtime)")
    return mine


def _describe(m: dict[str, Any]) -> str:
    w = m.get("weights_sha256")
    return (f"{m.get('name')} {m.get('version')}" + (f" ({m['runtime']})" if m.get("runtime") else "")
            + (f" weights sha256 {w[:12]}" if w else ""))


def compare_records(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]],
                    tolerances: Tolerances = Tolerances(), model: dict[str, Any] | None = None,
                    require_all: bool = True) -> Report:
    """Match ``new`` records to ``old`` by normalised path and compare them.

    ``require_all``: old records with no new one are listed in ``not_given`` (an error); new ones
    missing from ``old`` always are (``not_in_baseline``)."""
    golden = {os.path.normpath(r["path"]): r for r in old}
    seen = {os.path.normpath(r["path"]) for r in new}
    report = Report([], tolerances, model if model is not None else check_model(old, new))
    for r in new:
        key = os.path.normpath(r["path"])
        if key not in golden:
            report.not_in_baseline.append(key)
        elif "error" in r or "error" in golden[key]:
            bad = r if "error" in r else golden[key]
            report.clips.append(ClipDelta(key, "error", reasons=[f"{bad['error']}: {bad['message']}"]))
        else:
            report.clips.append(compare_clip(golden[key], r, tolerances))
    if require_all:
        report.not_given = [k for k in golden if k not in seen]
    return report


def compare_clip(old: dict[str, Any], new: dict[str, Any], tol: Tolerances) -> ClipDelta:
    """Delta of one matched pair of records (see :class:`ClipDelta`)."""
    path = os.path.normpath(new["path"])
    if old["score"] is None or new["score"] is None:
        return ClipDelta(path, "error", old["score"], new["score"], reasons=["no score (an unparsed answer)"])
    d = ClipDelta(path, "pass", old["score"], new["score"], new["score"] - old["score"])
    if old.get("file_sha256") and new.get("file_sha256"):
        d.file_changed = old["file_sha256"] != new["file_sha256"]
    unit = "" if not tol.relative else " of the golden score"
    drop = tol.drop(old["score"], new["score"])
    if drop > tol.max_drop:
        d.reasons.append(f"score fell {_amount(drop, tol)}{unit}, more than the allowed "
                         f"{_amount(tol.max_drop, tol)} ({old['score']:.4f} -> {new['score']:.4f})")
    a, b = old.get("timeline") or [], new.get("timeline") or []
    span = lambda s: (s["start_frame"], s["end_frame"])  # noqa: E731
    if [span(s) for s in a] != [span(s) for s in b]:
        d.reasons.append(f"the segments differ ({len(a)} in the baseline, {len(b)} now): the clip's "
                         "length or frame rate changed")
    elif a:
        deltas = [s["score"] - t["score"] for s, t in zip(b, a)]
        d.worst_segment = min(range(len(deltas)), key=deltas.__getitem__)
        d.worst_segment_delta = deltas[d.worst_segment]
        s, t = a[d.worst_segment], b[d.worst_segment]
        seg_drop = tol.drop(s["score"], t["score"])
        if seg_drop > tol.max_segment_drop:
            d.reasons.append(f"segment {d.worst_segment} ({s['start_time']:.2f}-{s['end_time']:.2f} s) fell "
                             f"{_amount(seg_drop, tol)}{unit}, more than the allowed "
                             f"{_amount(tol.max_segment_drop, tol)} ({s['score']:.4f} -> {t['score']:.4f})")
    if d.reasons:
        d.status = "regression"
    return d


def _amount(x: float, tol: Tolerances) -> str:
    return f"{100 * x:.3g}%" if tol.relative else f"{x:.4g}"
