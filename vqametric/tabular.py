"""Tables in and out: the rows of CSV and JSON Lines manifests, and aligned text tables.

* :func:`csv_rows` and :func:`jsonl_rows` read a manifest as ``(line, {column: value})`` pairs
  (column names normalised by :func:`normalise_key`; in CSV an empty cell is ``None``), and
  :func:`manifest_format` tells the two apart by extension. Problems raise
  :class:`ManifestFormatError` naming the file and the line. The training manifests
  (:mod:`vqametric.train.manifest`) and the rate-distortion manifests
  (:mod:`vqametric.regression.rd`) read their rows with them.
* :func:`format_table`: rows as left-aligned text columns under a header (the command line's tables).

>>> print(format_table([["a.mp4", "3.20"]], ["clip", "score"]))
clip   score
-----  -----
a.mp4  3.20
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from .errors import VQAMetricError

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class ManifestError(VQAMetricError):
    """Base class of manifest problems."""


class ManifestFormatError(ManifestError, ValueError):
    """The manifest cannot be read as CSV / JSON Lines, or lacks a required column."""


def normalise_key(key: str) -> str:
    """Column names are case-insensitive; spaces and dashes read as underscores
    ("Motion Quality" -> "motion_quality")."""
    return "_".join(key.strip().lower().replace("-", " ").split())


def where(source: str, line: int, column: str | None = None) -> str:
    """``"file, line 3, column 'mos'"``: the place a message names."""
    return f"{source}, line {line}" + (f", column {column!r}" if column else "")


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, {normalised column: stripped text or None})`` of each non-empty CSV row."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise ManifestFormatError(f"{path}: empty CSV; the first line must be a header with 'path' and 'mos'")
        names = [normalise_key(n or "") for n in reader.fieldnames]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ManifestFormatError(f"{path}: duplicate column(s) {dup} in the header")
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise ManifestFormatError(f"{where(str(path), line)}: more cells than header columns")
                vals = {normalise_key(k): v for k, v in row.items()}
                if all((v is None or str(v).strip() == "") for v in vals.values()):
                    continue
                yield line, {k: (None if v is None or v.strip() == "" else v.strip()) for k, v in vals.items()}
        except csv.Error as e:
            raise ManifestFormatError(f"{where(str(path), reader.line_num)}: malformed CSV ({e})") from None


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, {normalised key: value})`` of each non-empty JSON Lines line (a JSON object)."""
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ManifestFormatError(f"{where(str(path), line)}: invalid JSON ({e.msg} at column {e.colno})") \
                    from None
            if not isinstance(obj, dict):
                raise ManifestFormatError(f"{where(str(path), line)}: each line must be a JSON object, "
                                          f"got {type(obj).__name__}")
            keys = [normalise_key(k) for k in obj]
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise ManifestFormatError(f"{where(str(path), line)}: the same column given twice {dup}")
            yield line, {normalise_key(k): v for k, v in obj.items()}


def manifest_format(path: Path, fmt: str | None) -> str:
    """``"csv"`` or ``"jsonl"``: ``fmt`` when given (checked), else from the file's extension."""
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ManifestFormatError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise ManifestFormatError(f"{path}: unknown manifest extension {suffix!r}; use .csv or .jsonl "
                              "(or pass format='csv' / 'jsonl')")


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header`` in left-aligned columns two spaces apart, a dashed line below the header."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
