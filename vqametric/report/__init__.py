"""HTML reports of scoring results: ``vqametric report RESULTS.json -o report.html``.

One self-contained file (inline CSS, SVG charts, ``data:`` thumbnails and a little vanilla
JavaScript; nothing is fetched): run metadata, the score histogram, a sortable and filterable table
of clips, failures with their reasons, RD curves and BD-rate tables when given a ``vqametric rd``
report, and per clip its timeline, attribution, explanation and thumbnails of its worst and best
segments. Importing this package imports neither torch nor matplotlib.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from .cli import register_report
from .load import Entry, entries, read_inputs
from .page import render
from .thumbs import thumbnails as _thumbnails


def render_report(records: Iterable[Any], thumbnails: bool = True, rd: Sequence[dict[str, Any]] = (),
                  title: str = "vqametric report", folder: str | None = None) -> str:
    """The report page as a string; arguments as :func:`write_report`."""
    rows = records if isinstance(records, list) and all(isinstance(r, Entry) for r in records) \
        else entries(records, folder)
    return render(rows, _thumbnails if thumbnails else None, rd, title)


def write_report(records: Iterable[Any], path: str | os.PathLike, thumbnails: bool = True,
                 rd: Sequence[dict[str, Any]] = (), title: str = "vqametric report",
                 folder: str | None = None) -> str:
    """Write the HTML report of ``records`` to ``path`` and return the path.

    ``records``: result dicts (:meth:`QualityResult.to_dict`, what ``vqametric score --format json``
    writes), failure dicts (``source``, ``error``, ``message``) or :class:`QualityResult` objects.
    ``thumbnails``: decode the worst and best segment of each clip whose source file is readable
    (relative sources are looked up in the working directory, then in ``folder``). ``rd``: reports
    of ``vqametric rd --json``, shown as RD curves and BD-rate tables."""
    text = render_report(records, thumbnails, rd, title, folder)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return os.fspath(path)


__all__ = ["write_report", "render_report", "read_inputs", "register_report"]
