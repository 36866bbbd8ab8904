"""Small inline SVG charts of a report: the score histogram, attribution bars and RD curves. The
clip timelines are :func:`vqametric.plotting.timeline_svg`."""
from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from ..plotting import BAR, HIGH, LOW, WORST

_AXIS = "#555"
_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _open(width: int, height: int, label: str, cls: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">')


def histogram_svg(scores: Sequence[float], bin_width: float = 0.25, width: int = 400, height: int = 150) -> str:
    """Counts of ``scores`` in bins of ``bin_width`` on the 1-5 scale (a score of 5 falls in the last bin)."""
    n_bins = round((HIGH - LOW) / bin_width)
    counts = [0] * n_bins
    for s in scores:
        counts[min(max(int((s - LOW) / bin_width), 0), n_bins - 1)] += 1
    top = max(counts, default=0) or 1
    left, bottom, plot_h = 30, 22, height - 32
    plot_w = width - left - 8
    bw = plot_w / n_bins
    out = [_open(width, height, f"histogram of {len(scores)} clip scores", "histogram")]
    for i, c in enumerate(counts):
        h = c / top * plot_h
        lo = LOW + i * bin_width
        out.append(f'<rect x="{left + i * bw + 0.5:.1f}" y="{height - bottom - h:.1f}" width="{bw - 1:.1f}" '
                   f'height="{h:.1f}" fill="{BAR}"><title>{lo:.2f}-{lo + bin_width:.2f}: {c} clip(s)</title></rect>')
    out.append(f'<line x1="{left}" x2="{width - 8}" y1="{height - bottom}" y2="{height - bottom}" stroke="{_AXIS}"/>')
    for v in range(int(LOW), int(HIGH) + 1):
        x = left + (v - LOW) / (HIGH - LOW) * plot_w
        out.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="11" fill="{_AXIS}" text-anchor="middle">{v}</text>')
    out.append(f'<text x="{left - 4}" y="{height - bottom - plot_h + 10:.1f}" font-size="11" fill="{_AXIS}" '
               f'text-anchor="end">{top}</text>')
    out.append(f'<text x="{left - 4}" y="{height - bottom}" font-size="11" fill="{_AXIS}" text-anchor="end">0</text>')
    out.append("</svg>")
    return "".join(out)


def attribution_svg(attribution: dict[str, float], dominant: str | None, width: int = 300) -> str:
    """One bar per distortion (severity 0-1), the dominant one red; '' without attribution."""
    if not attribution:
        return ""
    row, label_w = 14, 90
    height = row * len(attribution) + 4
    out = [_open(width, height, "attribution severities", "attribution")]
    for i, (name, value) in enumerate(attribution.items()):
        y = 2 + i * row
        v = min(max(float(value), 0.0), 1.0) if value is not None and math.isfinite(value) else 0.0
        colour = WORST if name == dominant else BAR
        out.append(f'<text x="{label_w - 4}" y="{y + 10}" font-size="10" fill="{_AXIS}" '
                   f'text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 1}" width="{width - label_w - 40}" height="{row - 3}" fill="#f0f0f0"/>')
        out.append(f'<rect x="{label_w}" y="{y + 1}" width="{v * (width - label_w - 40):.1f}" height="{row - 3}" '
                   f'fill="{colour}"><title>{escape(name)}: {v:.2f}</title></rect>')
        out.append(f'<text x="{width - 36}" y="{y + 10}" font-size="10" fill="{_AXIS}">{v:.2f}</text>')
    out.append("</svg>")
    return "".join(out)


def rd_svg(points: Sequence[dict[str, Any]], sequence: str, width: int = 360, height: int = 220) -> str:
    """Score against bitrate (log axis) for one sequence of an RD report, one polyline per curve."""
    pts = [p for p in points if p.get("sequence") == sequence and (p.get("bitrate_kbps") or 0) > 0
           and p.get("score") is not None]
    if not pts:
        return ""
    rates = [math.log10(p["bitrate_kbps"]) for p in pts]
    r0, r1 = min(rates), max(rates)
    r0, r1 = (r0 - 0.1, r1 + 0.1) if r1 - r0 < 1e-9 else (r0, r1)
    q0, q1 = min(p["score"] for p in pts), max(p["score"] for p in pts)
    q0, q1 = (q0 - 0.1, q1 + 0.1) if q1 - q0 < 1e-9 else (q0, q1)
    left, right, top, bottom = 36, 90, 18, 28
    pw, ph = width - left - right, height - top - bottom
    x = lambda p: left + (math.log10(p["bitrate_kbps"]) - r0) / (r1 - r0) * pw  # noqa: E731
    y = lambda p: top + (1 - (p["score"] - q0) / (q1 - q0)) * ph  # noqa: E731
    out = [_open(width, height, f"RD curves of {sequence}", "rd"),
           f'<text x="{left}" y="12" font-size="11" fill="#222">{escape(sequence)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f7f7f7"/>']
    names = list(dict.fromkeys(p["curve"] for p in pts))
    for k, name in enumerate(names):
        colour = _PALETTE[k % len(_PALETTE)]
        line = sorted((p for p in pts if p["curve"] == name), key=lambda p: p["bitrate_kbps"])
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'points="{" ".join(f"{x(p):.1f},{y(p):.1f}" for p in line)}"/>')
        for p in line:
            out.append(f'<circle cx="{x(p):.1f}" cy="{y(p):.1f}" r="2.5" fill="{colour}"><title>{escape(name)}: '
                       f'{p["bitrate_kbps"]:.0f} kbit/s, score {p["score"]:.2f}</title></circle>')
        out.append(f'<text x="{width - right + 6}" y="{top + 10 + 13 * k}" font-size="10" fill="{colour}">'
                   f'{escape(name)}</text>')
    for text, tx, ty, anchor in ((f"{10 ** r0:.0f}", left, height - 14, "start"),
                                 (f"{10 ** r1:.0f} kbit/s", left + pw, height - 14, "end"),
                                 (f"{q0:.2f}", left - 3, top + ph, "end"), (f"{q1:.2f}", left - 3, top + 9, "end")):
        out.append(f'<text x="{tx}" y="{ty}" font-size="10" fill="{_AXIS}" text-anchor="{anchor}">{text}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 2}" font-size="10" fill="{_AXIS}" '
               'text-anchor="middle">bitrate (log), score 1-5</text>')
    out.append("</svg>")
    return "".join(out)


__all__ = ["histogram_svg", "attribution_svg", "rd_svg"]
