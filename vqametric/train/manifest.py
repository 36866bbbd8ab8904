"""Training manifests for the reasoning models: CSV or JSON Lines, validated with typed errors.

One row per video:

==================  ========  ==========================================================
column              required  meaning
==================  ========  ==========================================================
``path``            yes       the video file; relative paths are resolved against the
                              manifest's folder (or ``base_dir``)
``mos``             yes       mean opinion score on the 1-5 scale
``motion_quality``  no        the five dimension ratings of the multi-dimension data
``motion_amplitude``          (UltraVQA-style), each on the 1-5 scale; the title-case
``aesthetic_quality``         names ("Motion Quality", ...) are accepted too
``content_quality``
``clarity_quality``
``rationale``       no        free text explaining the ratings (supervised stage of ASO)
==================  ========  ==========================================================

Other columns are kept in :attr:`ManifestRecord.extra`. In CSV an empty cell means "not given";
in JSON Lines a missing key or ``null`` does. Errors name the file, the line and the column:

* :class:`ManifestFormatError`: unreadable file, unknown extension, bad CSV/JSON, missing column;
* :class:`ManifestValueError`: a value that is not a number, out of range, NaN, empty path,
  duplicate path, a required dimension or rationale missing;
* :class:`ManifestFileNotFound`: a listed video does not exist (with ``check_files=True``).

All derive from :class:`ManifestError` (a :class:`vqametric.errors.VQAMetricError`).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..tabular import (CSV_SUFFIXES, JSONL_SUFFIXES, ManifestError, ManifestFormatError, csv_rows,  # noqa: F401
                       jsonl_rows, manifest_format, normalise_key, where)

DIMENSIONS = ("motion_quality", "motion_amplitude", "aesthetic_quality", "content_quality", "clarity_quality")
DIMENSION_TITLES = dict(zip(DIMENSIONS, ("Motion Quality", "Motion Amplitude", "Aesthetic Quality",
                                          "Content Quality", "Clarity Quality")))
SCORE_RANGE = (1.0, 5.0)


class ManifestValueError(ManifestError, ValueError):
    """A value in the manifest is missing, of the wrong type or out of range."""


class ManifestFileNotFound(ManifestError, FileNotFoundError):
    """The manifest itself, or a video it lists, does not exist."""


@dataclass(frozen=True)
class ManifestRecord:
    """One validated row. ``path`` is absolute when the manifest gave a relative one;
    ``dimensions`` holds only the ratings that were given; ``line`` is the 1-based line of the
    row in the file (for messages)."""
    path: str
    mos: float
    dimensions: dict[str, float] = field(default_factory=dict)
    rationale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def dimension_vector(self, dimensions: Sequence[str] = DIMENSIONS) -> list[float]:
        """The ratings in ``dimensions`` order, NaN where not given (ASO labels)."""
        return [self.dimensions.get(d, math.nan) for d in dimensions]


def _number(value: Any, source: str, line: int, column: str, rng: tuple[float, float], from_text: bool) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or (from_text and isinstance(value, str))):
        raise ManifestValueError(f"{where(source, line, column)}: expected a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise ManifestValueError(f"{where(source, line, column)}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ManifestValueError(f"{where(source, line, column)}: {value!r} is not a finite number")
    lo, hi = rng
    if not lo <= x <= hi:
        raise ManifestValueError(
            f"{where(source, line, column)}: {x:g} is outside [{lo:g}, {hi:g}]; rescale the scores to the "
            f"{lo:g}-{hi:g} scale first (for 0-100 MOS: 1 + 4 * mos / 100)")
    return x


def parse_rows(rows: Iterator[tuple[int, dict[str, Any]]], source: str, base_dir: Path | None,
               from_text: bool, score_range: tuple[float, float] = SCORE_RANGE,
               require_dimensions: bool = False, require_rationale: bool = False,
               allow_duplicates: bool = False) -> list[ManifestRecord]:
    """Validate ``(line, {column: value})`` rows (keys already normalised) into records."""
    records: list[ManifestRecord] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        for col in ("path", "mos"):
            if row.get(col) is None:
                raise ManifestValueError(f"{where(source, line, col)}: missing value (required)")
        p = row["path"]
        if not isinstance(p, str) or not p.strip():
            raise ManifestValueError(f"{where(source, line, 'path')}: expected a non-empty string, got {p!r}")
        p = os.path.expanduser(p.strip())
        if base_dir is not None and not os.path.isabs(p):
            p = str(base_dir / p)
        if p in seen and not allow_duplicates:
            raise ManifestValueError(f"{where(source, line, 'path')}: {row['path']!r} already listed on line "
                                     f"{seen[p]}; merge the ratings or pass allow_duplicates=True")
        seen.setdefault(p, line)
        mos = _number(row["mos"], source, line, "mos", score_range, from_text)
        dims = {}
        for d in DIMENSIONS:
            v = row.get(d)
            if v is None:
                if require_dimensions:
                    raise ManifestValueError(f"{where(source, line, d)}: missing rating (required)")
                continue
            dims[d] = _number(v, source, line, d, score_range, from_text)
        rationale = row.get("rationale")
        if rationale is not None and not isinstance(rationale, str):
            raise ManifestValueError(f"{where(source, line, 'rationale')}: expected text, got "
                                     f"{type(rationale).__name__}")
        if rationale is not None and not rationale.strip():
            rationale = None
        if rationale is None and require_rationale:
            raise ManifestValueError(f"{where(source, line, 'rationale')}: missing rationale text (required)")
        known = {"path", "mos", "rationale", *DIMENSIONS}
        extra = {k: v for k, v in row.items() if k not in known}
        records.append(ManifestRecord(p, mos, dims, rationale, extra, line))
    return records


def load_manifest(path: str | os.PathLike, base_dir: str | os.PathLike | None = None, check_files: bool = True,
                  format: str | None = None, score_range: tuple[float, float] = SCORE_RANGE,
                  require_dimensions: bool = False, require_rationale: bool = False,
                  allow_duplicates: bool = False) -> list[ManifestRecord]:
    """Read and validate a manifest (see the module docstring for the columns).

    ``base_dir`` (default: the manifest's folder) resolves relative video paths;
    ``check_files`` checks that every video exists; ``format`` overrides the extension;
    ``score_range`` bounds ``mos`` and the dimension ratings; ``require_dimensions`` /
    ``require_rationale`` make those columns mandatory (ASO data). Raises a
    :class:`ManifestError` subclass naming the file, line and column of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise ManifestFileNotFound(f"manifest {str(path)!r} does not exist or is not a file")
    fmt = manifest_format(path, format)
    base = Path(base_dir) if base_dir is not None else path.resolve().parent
    try:
        if fmt == "csv":
            _check_csv_header(path)
        rows = csv_rows(path) if fmt == "csv" else jsonl_rows(path)
        records = parse_rows(rows, str(path), base, from_text=(fmt == "csv"), score_range=score_range,
                             require_dimensions=require_dimensions, require_rationale=require_rationale,
                             allow_duplicates=allow_duplicates)
    except UnicodeDecodeError as e:
        raise ManifestFormatError(f"{path}: not UTF-8 text ({e.reason})") from None
    if not records:
        raise ManifestFormatError(f"{path}: no rows; a manifest needs at least one video")
    if check_files:
        for r in records:
            if not os.path.isfile(r.path):
                raise ManifestFileNotFound(f"{where(str(path), r.line, 'path')}: video {r.path!r} does not exist "
                                           "(paths are relative to the manifest's folder unless base_dir is given)")
    return records


def _check_csv_header(path: Path) -> None:
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    if not header:
        raise ManifestFormatError(f"{path}: empty CSV; the first line must be a header with 'path' and 'mos'")
    names = {normalise_key(h) for h in header}
    missing = [c for c in ("path", "mos") if c not in names]
    if missing:
        raise ManifestFormatError(f"{path}: the header lacks column(s) {missing}; found {sorted(names)}")


def dimension_labels(records: Sequence[ManifestRecord], dimensions: Sequence[str] = DIMENSIONS):
    """``(N, D)`` float tensor of the dimension ratings, NaN where not given (ASO labels)."""
    import torch  # torch: heavy; the manifest reader itself does not need it
    return torch.tensor([r.dimension_vector(dimensions) for r in records], dtype=torch.float32)
