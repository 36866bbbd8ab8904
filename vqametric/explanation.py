"""Explanations without a reasoning model: a few sentences from a fast model's result.

:func:`describe` reads only what a :class:`~vqametric.result.QualityResult` holds: the clip score,
the segment timeline (each segment's score, most likely distortion and hold flag) and the
attribution severities. It adds no judgement of its own and names nothing the model does not
output: the fast model scores each segment from a few sampled frames (4 consecutive frames per
segment for ``vqametric-fast``), and its attribution top-1 is right for about 70 % of
single-distortion clips (docs/models.md).

Words:

* **Severity** (``attribution``, one value in [0, 1] per distortion, pooled over the clip):
  below ``MILD`` (0.2) *none*, and the distortion is not mentioned; from ``MILD`` *mild*; from
  ``MODERATE`` (0.4) *moderate*; from ``STRONG`` (0.6) *strong*.
* **Drops**: a segment *drops* when it scores at least ``DROP`` (0.5, the ``DEFECT_DROP`` of
  :mod:`vqametric.backends.pooling`) below the median segment. Consecutive dropping segments are
  one time range, named by the distortion most of its segments carry (ties: the lowest-scoring
  segment's) and that distortion's severity word. At most ``MAX_RANGES`` ranges are spelled out.
* **Frozen**: consecutive segments with ``frozen=True`` (pooling saw the same picture held while
  the clip moves), as time ranges.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .result import QualityResult, SegmentScore

MILD = 0.2
MODERATE = 0.4
STRONG = 0.6
DROP = 0.5          # = backends.pooling.DEFECT_DROP (a test checks); not imported, so that results can be
                    # described without loading the scoring backends (torch)
MAX_RANGES = 3
LABEL = "Generated from the fast model's timeline and attribution, not by a reasoning model."
_NO_CAUSE = ("none", "", None)


def severity_word(severity: float) -> str:
    """``"none"``, ``"mild"``, ``"moderate"`` or ``"strong"`` for a severity in [0, 1] (module docstring).

    >>> [severity_word(v) for v in (0.1, 0.2, 0.45, 0.9)]
    ['none', 'mild', 'moderate', 'strong']
    """
    if severity >= STRONG:
        return "strong"
    if severity >= MODERATE:
        return "moderate"
    if severity >= MILD:
        return "mild"
    return "none"


def time_range(segments: Sequence[SegmentScore]) -> str:
    """``"4.0-6.0 s"``: from the first segment's start to the last one's end."""
    return f"{segments[0].start_time:.1f}-{segments[-1].end_time:.1f} s"


def runs(timeline: Sequence[SegmentScore], flags: Sequence[bool]) -> list[list[SegmentScore]]:
    """Consecutive segments of ``timeline`` whose flag is set, as lists in time order."""
    out: list[list[SegmentScore]] = []
    previous = False
    for seg, flag in zip(timeline, flags):
        if flag:
            if previous:
                out[-1].append(seg)
            else:
                out.append([seg])
        previous = flag
    return out


def drops(result: QualityResult) -> list[list[SegmentScore]]:
    """Runs of segments that score at least ``DROP`` below the median segment (none with fewer
    than two segments)."""
    tl = result.timeline
    if len(tl) < 2:
        return []
    median = statistics.median(s.score for s in tl)
    return runs(tl, [median - s.score >= DROP for s in tl])


def frozen_ranges(result: QualityResult) -> list[list[SegmentScore]]:
    """Runs of segments with ``frozen=True``."""
    return runs(result.timeline, [s.frozen for s in result.timeline])


def _cause(segments: Sequence[SegmentScore]) -> str | None:
    counts = Counter(s.distortion for s in segments)
    top = max(counts.values())
    tied = {d for d, c in counts.items() if c == top}
    name = min((s for s in segments if s.distortion in tied), key=lambda s: s.score).distortion
    return None if name in _NO_CAUSE else name


def _named(distortion: str, severity: float | None) -> str:
    word = severity_word(severity) if severity is not None else "none"
    return distortion if word == "none" else f"{distortion} ({word})"


def describe(result: QualityResult) -> str:
    """A short factual explanation of ``result`` in English (one paragraph, no line breaks), e.g.
    ``"Quality 2.4 / 5 (vqametric-fast 1.0.0). Quality drops at 4.0-6.0 s (segment score 1.6 against
    a median of 3.1): most likely blur (strong). Across the clip: compression (mild). Most likely
    distortion: blur. Frozen: 3.0-4.0 s. Generated from ..."``. Words and thresholds: module docstring.

    Args:
        result: a fast model's :class:`~vqametric.result.QualityResult` (a result without
            timeline or attribution gets its score and a sentence saying so).

    Returns:
        One paragraph of English, a ``str`` ending with ``LABEL``.

    Example:
        >>> from vqametric import QualityResult, SegmentScore
        >>> r = QualityResult(score=3.0, model="vqametric-fast", model_version="1.0.0",
        ...                   timeline=[SegmentScore(0, 30, 0.0, 1.0, 3.5, "none"),
        ...                             SegmentScore(30, 60, 1.0, 2.0, 2.5, "blur"),
        ...                             SegmentScore(60, 90, 2.0, 3.0, 3.5, "none")],
        ...                   attribution={"blur": 0.7, "noise": 0.05}, dominant_distortion="blur")
        >>> print(describe(r))
        Quality 3.0 / 5 (vqametric-fast 1.0.0). Quality drops at 1.0-2.0 s (segment score 2.5
        against a median of 3.5): most likely blur (strong). Most likely distortion: blur.
        Generated from the fast model's timeline and attribution, not by a reasoning model.
    """
    head = f"({result.model} {result.model_version})"
    if not result.parse_ok or math.isnan(result.score):
        return f"No score {head}: the model's answer could not be parsed."
    parts = [f"Quality {result.score:.1f} / 5 {head}."]
    if not result.timeline and not result.attribution:
        parts.append("The result has no timeline or attribution to explain.")
        return " ".join(parts)
    named: set[str] = set()
    ranges = drops(result)
    if ranges:
        median = statistics.median(s.score for s in result.timeline)
        for i, run in enumerate(ranges[:MAX_RANGES]):
            low = min(s.score for s in run)
            what = "segment score" if len(run) == 1 else "segment scores down to"
            cause = _cause(run)
            if cause:
                named.add(cause)
            reason = "no distortion named" if cause is None else \
                f"most likely {_named(cause, result.attribution.get(cause))}"
            parts.append(f"Quality {'also ' if i else ''}drops at {time_range(run)} ({what} {low:.1f} against a "
                         f"median of {median:.1f}): {reason}.")
        if len(ranges) > MAX_RANGES:
            parts.append(f"{len(ranges) - MAX_RANGES} more range(s) drop as well.")
    elif len(result.timeline) >= 2:
        lo = min(s.score for s in result.timeline)
        hi = max(s.score for s in result.timeline)
        parts.append(f"No segment scores {DROP:g} or more below the median (segment scores {lo:.1f}-{hi:.1f}).")
    others = sorted(((v, d) for d, v in result.attribution.items() if d not in named and v >= MILD), reverse=True)
    if others:
        parts.append(("Across the clip: " if ranges else "Distortions: ")
                     + ", ".join(_named(d, v) for v, d in others) + ".")
    elif not named and result.attribution:
        parts.append("No distortion reaches mild severity.")
    if result.dominant_distortion not in _NO_CAUSE:
        parts.append(f"Most likely distortion: {result.dominant_distortion}.")
    elif result.attribution:
        parts.append("The model names no dominant distortion.")
    frozen = frozen_ranges(result)
    if frozen:
        parts.append("Frozen: " + ", ".join(time_range(r) for r in frozen) + ".")
    parts.append(LABEL)
    return " ".join(parts)


__all__ = ["describe", "severity_word", "drops", "frozen_ranges", "runs", "time_range", "MILD", "MODERATE",
           "STRONG", "DROP", "MAX_RANGES", "LABEL"]
