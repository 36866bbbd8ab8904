"""``vqametric score --fail-below X``: a minimum score every clip must reach."""
from __future__ import annotations

import sys
from typing import Iterable, TextIO

from ..result import QualityResult


def below_threshold(results: Iterable[QualityResult], threshold: float | None,
                    stream: TextIO | None = None) -> list[QualityResult]:
    """The results scoring below ``threshold`` (1-5; ``None``: no gate), each named on ``stream``
    (default stderr) with its score."""
    if threshold is None:
        return []
    low = [r for r in results if r.score < threshold]
    stream = stream or sys.stderr
    for r in low:
        print(f"below {threshold:g}: {r.source}: {r.score:.4f}", file=stream)
    if low:
        print(f"{len(low)} clip(s) scored below {threshold:g}", file=stream)
    return low
