"""``QualityResult``: what every backend returns for one video."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .explanation import frozen_ranges, severity_word, time_range
from .plotting import plot_result, result_html


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
    ``warnings``: what went wrong without stopping the scoring (e.g. a truncated file scored on the
    frames it holds); each is also issued as a :class:`RuntimeWarning`.

    Raises:
        ValueError: ``score`` is not finite (NaN is allowed only with ``parse_ok=False``).

    Example:
        >>> from vqametric import QualityResult, SegmentScore
        >>> r = QualityResult(score=3.2, model="vqametric-fast", model_version="1.0.0",
        ...                   timeline=[SegmentScore(0, 30, 0.0, 1.0, 3.5),
        ...                             SegmentScore(30, 60, 1.0, 2.0, 2.9, "blur")],
        ...                   attribution={"blur": 0.45, "noise": 0.1}, dominant_distortion="blur")
        >>> float(r), r.worst_segment().start_time
        (3.2, 1.0)
        >>> print(r)
        vqametric-fast 1.0.0: 3.20 / 5
          worst segment  1.0-2.0 s, score 2.90 (blur)
          dominant       blur (severity 0.45, moderate)
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
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if math.isnan(self.score) and not self.parse_ok:
            return  # a reasoning model's answer that could not be parsed: no score, never a stand-in
        if not math.isfinite(self.score):
            raise ValueError(f"a QualityResult score must be finite, got {self.score}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data that strict JSON accepts: an unparsed answer's missing score is ``None``, and so
        is any other value that is not a finite number, with the reason under ``null_reasons``
        (field path -> what the value was, e.g. ``{"clip.duration": "inf"}``).

        Returns:
            A ``dict`` of ``str`` to JSON types (``dict``, ``list``, ``str``, ``float``, ``int``,
            ``bool``, ``None``): every field, ``timeline`` as a list of dicts, plus
            ``null_reasons`` when a value was replaced by ``None``.

        Example:
            >>> from vqametric import QualityResult
            >>> d = QualityResult(score=3.2, model="m", clip={"duration": float("inf")}).to_dict()
            >>> d["score"], d["clip"], d["null_reasons"]
            (3.2, {'duration': None}, {'clip.duration': 'inf'})
            >>> QualityResult(score=float("nan"), model="m", parse_ok=False).to_dict()["score"] is None
            True
        """
        d = asdict(self)
        if math.isnan(self.score):
            d["score"] = None
        reasons: dict[str, str] = {}
        d = _finite(d, "", reasons)
        if reasons:
            d["null_reasons"] = reasons
        return d

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON (never ``NaN`` or ``Infinity``).

        Args:
            **kwargs: keyword arguments of :func:`json.dumps` (``indent``, ``sort_keys`` ...).

        Returns:
            The JSON text, a ``str``.

        Example:
            >>> import json
            >>> from vqametric import QualityResult
            >>> text = QualityResult(score=3.2, model="m").to_json()
            >>> json.loads(text)["score"]
            3.2
        """
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def __float__(self) -> float:
        return float(self.score)

    def worst_segment(self) -> SegmentScore | None:
        """The lowest-scoring segment of the timeline (the first of equals).

        Returns:
            A :class:`SegmentScore` (its ``score`` on the 1-5 scale), or None without a timeline.

        Example:
            >>> from vqametric import QualityResult, SegmentScore
            >>> r = QualityResult(score=3.0, model="m", timeline=[SegmentScore(0, 30, 0.0, 1.0, 3.5),
            ...                                                   SegmentScore(30, 60, 1.0, 2.0, 2.5)])
            >>> r.worst_segment().score, QualityResult(score=3.0, model="m").worst_segment()
            (2.5, None)
        """
        return min(self.timeline, key=lambda s: s.score) if self.timeline else None

    def summary(self) -> tuple[str, list[tuple[str, str]]]:
        """``(headline, rows)`` behind ``str(result)`` and the notebook table: the headline gives the
        model and the score (or the parse failure), each row is ``(what, text)``.

        Returns:
            ``(headline, rows)``: a ``str`` and a ``list`` of ``(str, str)`` pairs (worst segment,
            dominant distortion, frozen ranges, dimensions, reasoning, warnings; each only when
            the result has it).

        Example:
            >>> from vqametric import QualityResult
            >>> QualityResult(score=3.2, model="m", model_version="1", dimensions={"sharpness": 3.5}).summary()
            ('m 1: 3.20 / 5', [('dimensions', 'sharpness 3.5')])
        """
        name = f"{self.model} {self.model_version}"
        source = f"  {self.source}" if self.source else ""
        if not self.parse_ok or math.isnan(self.score):
            failure = self.sampling.get("generation", {}).get("failure") or "no answer"
            headline = f"{name}: no score, the model's answer could not be parsed ({failure}){source}"
        else:
            headline = f"{name}: {self.score:.2f} / 5{source}"
        rows: list[tuple[str, str]] = []
        worst = self.worst_segment()
        if worst is not None and len(self.timeline) > 1:
            cause = f" ({worst.distortion})" if worst.distortion not in (None, "none") else ""
            rows.append(("worst segment", f"{time_range([worst])}, score {worst.score:.2f}{cause}"))
        if self.dominant_distortion is not None:
            sev = self.attribution.get(self.dominant_distortion)
            word = "" if sev is None or severity_word(sev) == "none" else f", {severity_word(sev)}"
            rows.append(("dominant", self.dominant_distortion if sev is None else
                         f"{self.dominant_distortion} (severity {sev:.2f}{word})"))
        frozen = frozen_ranges(self)
        if frozen:
            rows.append(("frozen", ", ".join(time_range(r) for r in frozen)))
        if self.dimensions:
            rows.append(("dimensions", ", ".join(f"{k} {v:g}" for k, v in self.dimensions.items())))
        if self.text and self.text.strip():
            first = self.text.strip().splitlines()[0]
            rows.append(("reasoning", first if len(first) <= 72 else first[:69] + "..."))
        rows.extend(("warning", str(w)) for w in getattr(self, "warnings", None) or [])
        return headline, rows

    def __str__(self) -> str:
        """A few lines (:meth:`summary`): score and model, worst segment, dominant distortion, frozen
        ranges, dimensions, reasoning, warnings. ``repr`` stays the full dataclass repr."""
        headline, rows = self.summary()
        width = max((len(k) for k, _ in rows), default=0)
        return "\n".join([headline] + [f"  {k.ljust(width)}  {v}" for k, v in rows])

    def _repr_html_(self) -> str:
        """Notebook view: the rows of ``str(result)`` as a table and the timeline as inline SVG
        (all text escaped)."""
        return result_html(self)

    def plot(self, ax: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """Plot the timeline (segment scores over time on the 1-5 scale, worst segment marked,
        frozen segments hatched, the clip score as a dashed line) and the attribution severities
        (bars in [0, 1], the dominant distortion highlighted).

        ``ax``: None (a new figure with both panels), one matplotlib ``Axes`` (timeline only) or two
        (timeline, attribution). Returns ``(figure, axes)``, ``axes`` a tuple of the axes drawn on.
        Needs matplotlib (``pip install 'vqametric[plot]'``); the figure is not shown.

        Args:
            ax: None, one matplotlib ``Axes``, or a pair of them (see above).

        Returns:
            ``(figure, axes)``: the matplotlib ``Figure`` and a ``tuple`` of the ``Axes`` drawn on
            (two without ``ax``).

        Raises:
            BackendUnavailable: matplotlib is not installed.

        Example:
            >>> from vqametric import QualityResult, SegmentScore
            >>> r = QualityResult(score=3.0, model="m", timeline=[SegmentScore(0, 30, 0.0, 1.0, 3.5),
            ...                                                   SegmentScore(30, 60, 1.0, 2.0, 2.5)],
            ...                   attribution={"blur": 0.5}, dominant_distortion="blur")
            >>> fig, axes = r.plot()
            >>> len(axes), [float(y) for y in axes[0].get_ylim()]
            (2, [1.0, 5.0])
        """
        return plot_result(self, ax)


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
