"""The closing summary of a corpus run: counts, failures by reason, score percentiles, slowest clips."""
from __future__ import annotations

import heapq
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERCENTILES = (5, 25, 50, 75, 95)
SLOWEST = 5


@dataclass
class Summary:
    """Accumulates rows as they finish; :meth:`to_dict` and :meth:`render` report them. Memory per
    clip: its score (8 bytes); the slowest clips are kept as a heap of :data:`SLOWEST`."""

    scored: int = 0
    failed: int = 0
    skipped: int = 0
    with_warnings: int = 0
    warnings: int = 0
    interrupted: str | None = None
    failures: Counter = field(default_factory=Counter)
    scores: array = field(default_factory=lambda: array("d"))
    times: list[tuple[float, str]] = field(default_factory=list)  # a min-heap of the slowest

    def add(self, row: dict[str, Any]) -> None:
        if row.get("status") == "ok":
            self.scored += 1
            self.scores.append(float(row["score"]))
        else:
            self.failed += 1
            self.failures[row.get("error") or "unknown"] += 1
        if row.get("warnings"):
            self.with_warnings += 1
            self.warnings += len(row["warnings"])
        if row.get("seconds") is not None:
            item = (float(row["seconds"]), row["path"])
            if len(self.times) < SLOWEST:
                heapq.heappush(self.times, item)
            elif item > self.times[0]:
                heapq.heapreplace(self.times, item)

    def _percentiles(self) -> dict[str, float]:
        s = sorted(self.scores)
        return {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(s, PERCENTILES))} if s else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored, "failed": self.failed, "skipped": self.skipped,
            "warnings": self.warnings, "clips_with_warnings": self.with_warnings,
            "failures": dict(self.failures.most_common()),
            "percentiles": {k: round(v, 4) for k, v in self._percentiles().items()},
            "slowest": [{"path": p, "seconds": t} for t, p in sorted(self.times, key=lambda x: -x[0])],
            "interrupted": self.interrupted,
        }

    def render(self) -> str:
        d = self.to_dict()
        total = self.scored + self.failed
        head = f"{self.scored} scored, {self.failed} failed"
        if self.skipped:
            head += f", {self.skipped} skipped (already in the output)"
        if self.with_warnings:
            head += f"; {self.with_warnings} clip(s) with warnings ({self.warnings} warning(s), see the rows)"
        lines = [("interrupted by " + self.interrupted + ": " if self.interrupted else "summary: ") + head]
        if self.failed:
            lines.append(f"{self.failed} of {total} file(s) failed: " +
                         ", ".join(f"{k} {v}" for k, v in d["failures"].items()))
        if d["percentiles"]:   # printed from the exact values: rounding twice (to 4, then 3 places) can differ
            lines.append("scores: " + "  ".join(f"{k} {v:.3f}" for k, v in self._percentiles().items()))
        if d["slowest"] and total > 1:
            lines.append("slowest: " + ", ".join(f"{s['path']} ({s['seconds']:.2f} s)" for s in d["slowest"]))
        return "\n".join(lines)
