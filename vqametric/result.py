"""``QualityResult``: what every backend returns for one video."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SegmentScore:
    """Score of one temporal segment: source frames ``[start_frame, end_frame)``, seconds ``[start, end)``.

    ``distortion``: the segment's most likely attribution class (fast heads); ``frozen``: the
    segment holds the same picture for three frames while the clip moves (a freeze, or heavy
    stutter; see ``backends/pooling.py``)."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    score: float
    distortion: str | None = None
    frozen: bool = False


@dataclass
class QualityResult:
    """Quality of one video.

    ``score``: overall quality on the 1-5 mean-opinion scale, higher is better.
    ``dimensions``: per-dimension 1-5 scores where the model rates dimensions.
    ``timeline``: per-segment scores in time order.
    ``attribution``: distortion -> severity in [0, 1]; ``dominant_distortion`` is the most likely
    cause (``"none"`` when the model sees no dominant distortion).
    ``text``/``raw_answer``: reasoning-mode output; ``parse_ok`` is False when no answer could be
    parsed, and then ``score`` is NaN (``None`` in :meth:`to_dict`). ``timings``: seconds per stage.
    """

    score: float
    model: str
    model_version: str = "0"
    source: str = ""
    dimensions: dict[str, float] = field(default_factory=dict)
    timeline: list[SegmentScore] = field(default_factory=list)
    attribution: dict[str, float] = field(default_factory=dict)
    dominant_distortion: str | None = None
    text: str | None = None
    raw_answer: str | None = None
    parse_ok: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    clip: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if math.isnan(self.score) and not self.parse_ok:
            return  # a reasoning model's answer that could not be parsed: no score, never a stand-in
        if not math.isfinite(self.score):
            raise ValueError(f"a QualityResult score must be finite, got {self.score}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data that strict JSON accepts: an unparsed answer's missing score is ``None``, and so
        is any other value that is not a finite number, with the reason under ``null_reasons``
        (field path -> what the value was, e.g. ``{"clip.duration": "inf"}``)."""
        d = asdict(self)
        if math.isnan(self.score):
            d["score"] = None
        reasons: dict[str, str] = {}
        d = _finite(d, "", reasons)
        if reasons:
            d["null_reasons"] = reasons
        return d

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON (never ``NaN`` or ``Infinity``)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def __float__(self) -> float:
        return float(self.score)


def _finite(value: Any, path: str, reasons: dict[str, str]) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (its path and value noted in ``reasons``)."""
    if isinstance(value, float) and not math.isfinite(value):
        reasons[path] = str(value)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), reasons) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", reasons) for i, v in enumerate(value)]
    return value
