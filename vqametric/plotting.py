"""Pictures of results: matplotlib plots and the notebook HTML of a :class:`QualityResult`.

Plots are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas), never through pyplot's
global state, and never shown: save them (``fig.savefig``) or let a notebook display them.
matplotlib is optional (``pip install 'vqametric[plot]'``); without it plotting raises
:class:`~vqametric.errors.BackendUnavailable`. The notebook HTML needs no matplotlib: its timeline
is a small SVG written here.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, Sequence

from .errors import BackendUnavailable, VQAMetricError

if TYPE_CHECKING:  # pragma: no cover
    from .metric import VQAThinkerMetric
    from .result import QualityResult

LOW, HIGH = 1.0, 5.0          # the results' score scale
BAR = "#4c72b0"               # segment and severity bars
WORST = "#c44e52"             # the worst segment, the dominant distortion


def require_matplotlib() -> Any:
    """``matplotlib.figure.Figure``; :class:`BackendUnavailable` naming the extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401  (first: a blocked or missing package fails here)
        from matplotlib.figure import Figure  # optional: matplotlib (the plot extra)
    except ImportError as e:
        raise BackendUnavailable("plotting needs matplotlib: pip install 'vqametric[plot]'") from e
    return Figure


def _axes(ax: Any, n: int, figsize: tuple[float, float], **subplots: Any) -> tuple[Any, tuple[Any, ...]]:
    if ax is None:
        figure = require_matplotlib()(figsize=figsize, constrained_layout=True)
        axes = figure.subplots(1, n, squeeze=False, **subplots)[0]
        return figure, tuple(axes)
    require_matplotlib()
    axes = tuple(ax) if isinstance(ax, Sequence) or hasattr(ax, "__array__") else (ax,)
    return axes[0].figure, axes


def plot_result(result: QualityResult, ax: Any = None) -> tuple[Any, tuple[Any, ...]]:
    """:meth:`QualityResult.plot` (see there): ``(figure, (timeline_axes[, attribution_axes]))``."""
    figure, axes = _axes(ax, 2, (8.0, 2.8), gridspec_kw={"width_ratios": [2.4, 1.0]})
    _timeline(result, axes[0])
    if len(axes) > 1:
        _attribution(result, axes[1])
    return figure, axes


def _timeline(result: QualityResult, ax: Any) -> None:
    tl = result.timeline
    worst = result.worst_segment()
    if tl:
        bars = ax.bar([s.start_time for s in tl], [s.score - LOW for s in tl],
                      width=[max(s.end_time - s.start_time, 1e-3) for s in tl], bottom=LOW, align="edge",
                      color=[WORST if s is worst and len(tl) > 1 else BAR for s in tl], edgecolor="white",
                      linewidth=0.8)
        for bar, s in zip(bars, tl):
            if s.frozen:
                bar.set_hatch("//")
        if len(tl) > 1:
            cause = f"\n({worst.distortion})" if worst.distortion not in (None, "none") else ""
            ax.axvspan(worst.start_time, worst.end_time, color=WORST, alpha=0.12, linewidth=0)
            ax.text((worst.start_time + worst.end_time) / 2, HIGH - 0.1, f"worst {worst.score:.2f}{cause}", ha="center",
                    va="top", fontsize=8, color=WORST)
        ax.set_xlim(tl[0].start_time, max(s.end_time for s in tl))
    else:
        ax.text(0.5, 0.5, "no timeline", transform=ax.transAxes, ha="center", va="center", color="0.4")
    if math.isfinite(result.score):
        ax.axhline(result.score, color="0.2", linestyle="--", linewidth=1, label=f"clip {result.score:.2f}")
        ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_ylim(LOW, HIGH)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score (1-5)")
    score = f"{result.score:.2f}" if math.isfinite(result.score) else "no score"
    ax.set_title(f"{result.model} {result.model_version}: {score}", fontsize=10)


def _attribution(result: QualityResult, ax: Any) -> None:
    names = list(result.attribution)
    if not names:
        ax.text(0.5, 0.5, "no attribution", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_axis_off()
        return
    ax.barh(range(len(names)), [result.attribution[n] for n in names],
            color=[WORST if n == result.dominant_distortion else BAR for n in names])
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("severity (0-1)")
    ax.set_title(f"dominant: {result.dominant_distortion or 'n/a'}", fontsize=10)


def plot_metric(metric: VQAThinkerMetric, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
    """:meth:`VQAThinkerMetric.plot`: torchmetrics' single/multi-value plot of ``val``, or of every
    per-video score since the last ``reset`` (one point per video), bounded by the card's score
    range. Returns ``(figure, axes)``."""
    import torch  # lazy: torch only when plotting tensors

    per_video = val is None
    if per_video:
        seen = metric.scores
        seen = seen if isinstance(seen, torch.Tensor) else torch.cat(list(seen)) if len(seen) else torch.zeros(0)
        if seen.numel() == 0:
            raise VQAMetricError("plot() was called before any successful update(); score some videos first")
        val = list(seen.flatten())
    figure, (axes,) = _axes(ax, 1, (6.0, 3.5))
    from torchmetrics.utilities.plot import plot_single_or_multi_val  # lazy: imports torch

    lo, hi = metric.score_range
    plot_single_or_multi_val(val, ax=axes, higher_is_better=metric.higher_is_better, lower_bound=lo, upper_bound=hi,
                             name=f"{type(metric).__name__} ({metric.model_name})")
    if per_video:
        from matplotlib.ticker import MaxNLocator  # optional: matplotlib (the plot extra)

        axes.set_xlabel("video")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure, axes


# ------------------------------------------------------------------------------------------------
# notebook HTML


def timeline_svg(result: QualityResult, width: int = 360, height: int = 72) -> str:
    """The timeline as a small inline SVG: one bar per segment on the 1-5 scale (the worst red on a
    tinted column, frozen ones lighter), the clip score as a dashed line; each bar's tooltip gives
    its numbers."""
    tl = result.timeline
    if not tl:
        return ""
    t0, t1 = tl[0].start_time, max(s.end_time for s in tl)
    span = max(t1 - t0, 1e-9)
    y = lambda v: height - (min(max(v, LOW), HIGH) - LOW) / (HIGH - LOW) * height  # noqa: E731
    worst = result.worst_segment()
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" '
           f'viewBox="0 0 {width} {height + 14}" role="img" aria-label="segment scores over time">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f4f4f4"/>']
    if len(tl) > 1:  # the worst segment's column, visible even when its bar is flat
        x0 = (worst.start_time - t0) / span * width
        out.append(f'<rect x="{x0:.1f}" y="0" width="{(worst.end_time - worst.start_time) / span * width:.1f}" '
                   f'height="{height}" fill="{WORST}" fill-opacity="0.12"/>')
    for s in tl:
        x0 = (s.start_time - t0) / span * width
        w = max((s.end_time - s.start_time) / span * width - 1, 1)
        colour = WORST if s is worst and len(tl) > 1 else BAR
        tip = f"{s.start_time:.2f}-{s.end_time:.2f} s: {s.score:.2f}"
        tip += f" ({s.distortion})" if s.distortion not in (None, "none") else ""
        tip += ", frozen" if s.frozen else ""
        opacity = ' fill-opacity="0.5"' if s.frozen else ""
        out.append(f'<rect x="{x0:.1f}" y="{y(s.score):.1f}" width="{w:.1f}" height="{height - y(s.score):.1f}" '
                   f'fill="{colour}"{opacity}><title>{html.escape(tip)}</title></rect>')
    if math.isfinite(result.score):
        out.append(f'<line x1="0" x2="{width}" y1="{y(result.score):.1f}" y2="{y(result.score):.1f}" '
                   'stroke="#333" stroke-dasharray="4 3"/>')
    out.append(f'<text x="0" y="{height + 11}" font-size="10" fill="#555">{t0:.1f} s</text>')
    out.append(f'<text x="{width}" y="{height + 11}" font-size="10" fill="#555" text-anchor="end">{t1:.1f} s</text>')
    out.append("</svg>")
    return "".join(out)


def result_html(result: QualityResult) -> str:
    """:meth:`QualityResult._repr_html_`: :meth:`QualityResult.summary` as a table, then the timeline SVG."""
    headline, rows = result.summary()
    cells = "".join(f'<tr><th style="text-align:left">{html.escape(k)}</th>'
                    f'<td style="text-align:left">{html.escape(v)}</td></tr>' for k, v in rows)
    return f"<div><strong>{html.escape(headline)}</strong><table>{cells}</table>{timeline_svg(result)}</div>"


__all__ = ["plot_result", "plot_metric", "result_html", "timeline_svg", "require_matplotlib"]
