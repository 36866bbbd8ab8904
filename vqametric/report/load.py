"""Reading results for a report: the JSON list ``vqametric score --format json`` writes, JSON Lines
with one result per line, or the RD report ``vqametric rd`` writes (``kind: vqametric-rd-report``)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields
from typing import Any, Iterable

from ..errors import InvalidVideoInput
from ..result import QualityResult, SegmentScore

RD_KIND = "vqametric-rd-report"
_RESULT_FIELDS = {f.name for f in fields(QualityResult)}
_SEGMENT_FIELDS = {f.name for f in fields(SegmentScore)}


@dataclass
class Entry:
    """One row of the report: a result, or a failure (``result`` None, ``error`` and ``message`` set).
    ``folder``: where the input file was, to find relative sources."""

    source: str
    result: QualityResult | None = None
    error: str | None = None
    message: str | None = None
    folder: str | None = None

    @property
    def status(self) -> str:
        if self.result is None:
            return "failed"
        return "ok" if self.result.parse_ok and math.isfinite(self.result.score) else "no score"


def result_from_dict(d: dict[str, Any]) -> QualityResult:
    """A :class:`QualityResult` from :meth:`QualityResult.to_dict` output (unknown keys ignored; a
    ``None`` score is an unparsed answer)."""
    kwargs = {k: v for k, v in d.items() if k in _RESULT_FIELDS}
    kwargs["timeline"] = [SegmentScore(**{k: (math.nan if k == "score" and v is None else v)
                                          for k, v in s.items() if k in _SEGMENT_FIELDS})
                          for s in d.get("timeline") or []]
    kwargs["attribution"] = {k: v for k, v in (d.get("attribution") or {}).items() if v is not None}
    score = d.get("score")
    if score is None:
        kwargs["score"], kwargs["parse_ok"] = math.nan, False
    for key in ("dimensions", "sampling", "clip", "timings"):
        kwargs[key] = kwargs.get(key) or {}
    return QualityResult(**kwargs)


def entries(records: Iterable[Any], folder: str | None = None) -> list[Entry]:
    """Report rows from result dicts, failure dicts (``source``, ``error``, ``message``) or
    :class:`QualityResult` objects."""
    out = []
    for i, r in enumerate(records):
        if isinstance(r, QualityResult):
            out.append(Entry(r.source, r, folder=folder))
        elif not isinstance(r, dict):
            raise InvalidVideoInput(f"record {i + 1} is a {type(r).__name__}, not a result dict")
        elif r.get("error") or r.get("status") == "failed":  # a failure row (score's JSON, or a corpus row)
            out.append(Entry(str(r.get("source") or r.get("path") or ""), None, str(r.get("error") or "failed"),
                             str(r.get("message") or ""), folder))
        elif "model" in r and "score" in r:
            try:
                out.append(Entry(str(r.get("source") or r.get("path") or ""), result_from_dict(r), folder=folder))
            except (TypeError, ValueError) as e:
                raise InvalidVideoInput(f"record {i + 1} is not a result dict: {e}") from None
        else:
            raise InvalidVideoInput(f"record {i + 1} has neither a model and score nor an error")
    return out


def read_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Entry], list[dict[str, Any]]]:
    """``(entries, rd_reports)`` from JSON (a list of records, one record, or an RD report) and JSON
    Lines files. :class:`InvalidVideoInput` names the file and line that cannot be read."""
    rows: list[Entry] = []
    rd: list[dict[str, Any]] = []
    for path in paths:
        p = os.fspath(path)
        try:
            with open(p, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidVideoInput(f"cannot read {p}: {e.strerror or e}") from None
        folder = os.path.dirname(os.path.abspath(p))
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        data.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InvalidVideoInput(f"{p}:{n}: neither JSON nor JSON Lines ({e.msg})") from None
        if isinstance(data, dict) and data.get("kind") == RD_KIND:
            rd.append(data)
            continue
        records = data if isinstance(data, list) else [data]
        rd.extend(r for r in records if isinstance(r, dict) and r.get("kind") == RD_KIND)
        try:
            rows.extend(entries([r for r in records if not (isinstance(r, dict) and r.get("kind") == RD_KIND)],
                                folder))
        except InvalidVideoInput as e:
            raise InvalidVideoInput(f"{p}: {e}") from None
    return rows, rd


def resolve_source(entry: Entry) -> str | None:
    """The clip's file: its source as given, else relative to the input file's folder; None when neither exists."""
    src = entry.source
    if not src:
        return None
    candidates = [src] + ([os.path.join(entry.folder, src)] if entry.folder and not os.path.isabs(src) else [])
    return next((c for c in candidates if os.path.isfile(c)), None)


__all__ = ["Entry", "RD_KIND", "entries", "read_inputs", "resolve_source", "result_from_dict"]
