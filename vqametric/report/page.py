"""The report page: one self-contained HTML file (inline CSS, SVG, images and script; nothing is fetched)."""
from __future__ import annotations

import datetime
import math
import os
from collections import Counter
from html import escape
from typing import Any, Callable, Sequence

from .. import __version__
from ..explanation import describe
from ..plotting import timeline_svg
from .assets import CSS, JS
from .load import Entry, resolve_source
from .svg import attribution_svg, histogram_svg, rd_svg
from .thumbs import segment_frame

ThumbFn = Callable[[str, Sequence[int]], Sequence[str]]


def _fmt(x: Any, spec: str = ".2f", missing: str = "") -> str:
    return missing if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _attr(name: str, value: str) -> str:
    """`` name="value"`` (escaped), or nothing for an empty value."""
    return f' {name}="{escape(value)}"' if value else ""


def _counts(values: Sequence[str]) -> str:
    c = Counter(v for v in values if v)
    return ", ".join(f"{k} ({n})" if len(c) > 1 else k for k, n in c.most_common()) or "n/a"


def _sampling(entries: Sequence[Entry]) -> str:
    seen = Counter()
    for e in entries:
        if e.result is not None:
            s = e.result.sampling
            text = ", ".join(f"{k} {v}" for k, v in s.items() if isinstance(v, (str, int, float)) and k != "seed")
            seen[text] += bool(text)
    return "; ".join(k for k, n in seen.most_common(3) if n) or "n/a"


def metadata(entries: Sequence[Entry], inputs: Sequence[str] = ()) -> str:
    ok = [e for e in entries if e.result is not None]
    rows = [("model", _counts([f"{e.result.model}" for e in ok])),
            ("model version", _counts([e.result.model_version for e in ok])),
            ("sampling", _sampling(entries)),
            ("vqametric", __version__),
            ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("clips", str(len(entries))),
            ("scored", str(sum(e.status == "ok" for e in entries))),
            ("failures", str(sum(e.status != "ok" for e in entries)))]
    if inputs:
        rows.append(("input", ", ".join(os.path.basename(i) for i in inputs)))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="meta" id="meta">{dl}</dl>'


def _worst(e: Entry) -> tuple[str, float | None]:
    if e.result is None:
        return "", None
    w = e.result.worst_segment()
    if w is None:
        return "", None
    return f"{w.start_time:.1f}-{w.end_time:.1f} s: {w.score:.2f}", w.score


def clip_table(entries: Sequence[Entry]) -> str:
    head = [("source", "text", ""), ("score", "num", "clip score, 1-5"), ("dominant distortion", "text", ""),
            ("worst segment", "num", "lowest segment: time range and score (sorts by score)"),
            ("frames", "num", "frames in the clip"), ("seconds", "num", "scoring time"), ("status", "text", "")]
    ths = "".join(f'<th tabindex="0" data-type="{t}"{_attr("class", "num" if t == "num" else "")}'
                  f'{_attr("title", tip)}>{escape(h)}</th>' for h, t, tip in head)
    rows = []
    for i, e in enumerate(entries):
        r = e.result
        worst_text, worst_score = _worst(e)
        if r is None:
            cells = [("", ""), ("", ""), ("", ""), ("", ""), ("", ""), (f"failed: {e.error}", "")]
        else:
            cells = [(_fmt(r.score), _fmt(r.score, ".6g")), (r.dominant_distortion or "", ""),
                     (worst_text, _fmt(worst_score, ".6g")), (str(r.clip.get("num_frames", "")), ""),
                     (_fmt(r.timings.get("total"), ".2f"), _fmt(r.timings.get("total"), ".6g")), (e.status, "")]
        num = {0, 2, 3, 4}
        tds = "".join(f'<td{_attr("class", "num" if k in num else "")}{_attr("data-v", v)}>{escape(t)}</td>'
                      for k, (t, v) in enumerate(cells))
        cls = e.status.replace(" ", "-")
        rows.append(f'<tr class="{cls}"><td><a href="#clip-{i}">{escape(e.source or "(no source)")}</a></td>{tds}</tr>')
    return (f'<h2>Clips</h2><input id="filter" type="search" placeholder="filter: source, distortion, status" '
            f'aria-label="filter the clips"> <span id="shown" class="muted"></span>'
            f'<table id="clips"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def distribution(entries: Sequence[Entry]) -> str:
    scores = [e.result.score for e in entries if e.status == "ok"]
    if not scores:
        return '<div><h2>Score distribution</h2><p class="muted">No scores.</p></div>'
    s = sorted(scores)
    median = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    return (f'<div><h2>Score distribution</h2><div id="distribution">{histogram_svg(scores)}</div>'
            f'<p class="muted">{len(s)} score(s): min {s[0]:.2f}, median {median:.2f}, max {s[-1]:.2f} '
            "(bins of 0.25 on the 1-5 scale).</p></div>")


def _figure(uri: str | None, caption: str, missing: str) -> str:
    if uri:
        return f'<figure><img class="thumb" src="{uri}" alt="{escape(caption)}"><figcaption>{escape(caption)}' \
               "</figcaption></figure>"
    return f'<figure><div class="placeholder thumb-missing">{escape(missing)}</div>' \
           f"<figcaption>{escape(caption)}</figcaption></figure>"


def thumbs_html(e: Entry, thumbnail: ThumbFn | None) -> str:
    r = e.result
    tl = r.timeline
    if not tl:
        return _figure(None, "no timeline", "no segments to show")
    worst, best = r.worst_segment(), max(tl, key=lambda s: s.score)
    segs = [("worst", worst)] + ([("best", best)] if len(tl) > 1 else [])
    frames = [segment_frame(r, s) for _, s in segs]
    captions = [f"{name} {s.start_time:.1f}-{s.end_time:.1f} s, {s.score:.2f} (frame {f})"
                for (name, s), f in zip(segs, frames)]
    if thumbnail is None:
        return "".join(_figure(None, c, "thumbnails not made") for c in captions)
    path = resolve_source(e)
    if path is None:
        return "".join(_figure(None, c, "source file not found") for c in captions)
    try:
        uris = list(thumbnail(path, frames))
    except Exception as err:  # noqa: BLE001 - an unreadable file costs its thumbnails, not the report
        why = f"cannot decode: {type(err).__name__}"
        return "".join(_figure(None, c, why) for c in captions)
    return "".join(_figure(u, c, "") for u, c in zip(uris, captions))


def clip_detail(i: int, e: Entry, thumbnail: ThumbFn | None) -> str:
    r = e.result
    title = f'<h3>{escape(e.source or "(no source)")}</h3>'
    if r is None:
        return (f'<div class="clip failed" id="clip-{i}">{title}<p>Failed: <strong>{escape(e.error or "")}</strong>: '
                f"{escape(e.message or '')}</p></div>")
    score = f"{r.score:.2f} / 5" if e.status == "ok" else "no score"
    timeline = timeline_svg(r, width=420) or '<p class="muted">no timeline</p>'
    attribution = attribution_svg(r.attribution, r.dominant_distortion) or '<p class="muted">no attribution</p>'
    text = f'<p class="reasoning">{escape(r.text.strip())}</p>' if r.text and r.text.strip() else ""
    return (f'<div class="clip" id="clip-{i}">{title}<p><strong>{escape(score)}</strong> '
            f'<span class="muted">{escape(r.model)} {escape(r.model_version)}</span></p>'
            f'<div class="row"><div class="timeline-box">{timeline}</div>'
            f'<div class="row thumbs">{thumbs_html(e, thumbnail)}</div><div>{attribution}</div></div>'
            f'<p class="explanation">{escape(describe(r))}</p>{text}</div>')


def failures(entries: Sequence[Entry]) -> str:
    bad = [(i, e) for i, e in enumerate(entries) if e.status != "ok"]
    if not bad:
        return '<h2>Failures</h2><p class="muted" id="failures">None.</p>'
    rows = []
    for i, e in bad:
        if e.result is None:
            error, message = e.error or "", e.message or ""
        else:
            failure = e.result.sampling.get("generation", {}).get("failure") or "no answer"
            error, message = "ParseFailure", f"the model's answer could not be parsed ({failure})"
        rows.append(f'<tr><td><a href="#clip-{i}">{escape(e.source)}</a></td><td>{escape(error)}</td>'
                    f"<td>{escape(message)}</td></tr>")
    return (f'<h2>Failures</h2><table id="failures"><thead><tr><th>source</th><th>error</th><th>reason</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def rd_section(reports: Sequence[dict[str, Any]]) -> str:
    if not reports:
        return ""
    parts = ["<h2>Rate-distortion</h2>"]
    for rep in reports:
        points = rep.get("points") or []
        seqs = list(dict.fromkeys(p.get("sequence") for p in points))
        parts.append('<div class="row">' + "".join(rd_svg(points, s) for s in seqs) + "</div>")
        bd = rep.get("bd") or []
        if bd:
            rows = "".join(
                f"<tr><td>{escape(str(d.get('sequence')))}</td><td>{escape(str(d.get('curve')))}</td>"
                f"<td>{escape(str(d.get('anchor')))}</td><td>{escape(str(d.get('metric')))}</td>"
                f"<td class=num>{_fmt(d.get('bd_rate'), '+.2f', 'n/a')}{'%' if d.get('bd_rate') is not None else ''}"
                f"</td><td class=num>{_fmt(d.get('bd_quality'), '+.4f', 'n/a')}</td>"
                f"<td>{escape(d.get('note') or '')}</td></tr>" for d in bd)
            parts.append(f'<table class="bd"><thead><tr><th>sequence</th><th>curve</th><th>anchor</th><th>metric</th>'
                         f'<th class=num>BD-rate ({escape(str(rep.get("method", "")))})</th><th class=num>BD-quality'
                         f"</th><th>note</th></tr></thead><tbody>{rows}</tbody></table>")
        mono = [m for m in rep.get("monotonicity") or [] if m.get("violations")]
        if mono:
            parts.append("<p>Falls as rate rises: " + escape("; ".join(
                f"{m['sequence']} {m['curve']} ({m['metric']}): {m['violations']} of {m['steps']} step(s)"
                for m in mono)) + ".</p>")
    return "".join(parts)


def render(entries: Sequence[Entry], thumbnail: ThumbFn | None = None, rd: Sequence[dict[str, Any]] = (),
           title: str = "vqametric report", inputs: Sequence[str] = ()) -> str:
    """The whole page as a string."""
    details = "".join(clip_detail(i, e, thumbnail) for i, e in enumerate(entries))
    body = (f'<h1>{escape(title)}</h1><div class="row summary"><div><h2>Run</h2>{metadata(entries, inputs)}'
            f"</div>{distribution(entries)}</div>" + clip_table(entries) + failures(entries)
            + rd_section(rd) + f'<h2>Clip details</h2><div id="details">{details}</div>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
            f"<script>{JS}</script></body></html>\n")


__all__ = ["render", "metadata", "clip_table", "distribution", "failures", "rd_section", "clip_detail"]
