"""Streamed result files: each row is written and flushed as its clip finishes.

Formats (from the extension, else ``--format``): ``.jsonl`` / ``.ndjson`` (one JSON object a line,
the full :meth:`QualityResult.to_dict` merged into the row), ``.csv`` (:data:`CSV_COLUMNS`) and
``.json``. A ``.json`` file is written as ``[``, then one row a line separated by commas, and the
closing ``]`` when the run ends, also after SIGINT/SIGTERM (the signal only asks the run to stop;
the file is closed on the way out). Only a hard kill (SIGKILL, power loss) leaves it without its
``]``; ``--resume`` reads such a file and closes it properly.

Rows are flushed one by one and ``os.fsync``'d every :data:`FSYNC_ROWS` rows or
:data:`FSYNC_SECONDS` seconds, and when the file is closed. :func:`load_rows` reads a file back
for ``--resume``: a last line cut short by a crash is dropped (its clip is scored again).
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import Any, TextIO

FSYNC_ROWS = 64
FSYNC_SECONDS = 2.0
FORMATS = ("jsonl", "csv", "json")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}
CSV_COLUMNS = ["path", "status", "score", "dominant_distortion", "model", "model_version", "num_frames", "seconds",
               "error", "message", "warnings", "size", "mtime_ns", "source", "frames"]
_INT_COLUMNS = ("num_frames", "size", "mtime_ns", "frames")
_FLOAT_COLUMNS = ("score", "seconds")


def format_for(path: str | None, fmt: str | None) -> str | None:
    """The file format of ``path``: its extension's, else ``fmt`` when that is a streamable format."""
    if path:
        ext = os.path.splitext(path)[1].lower()
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
    return fmt if fmt in FORMATS else None


def csv_row(row: dict[str, Any]) -> list[str]:
    """A row's CSV cells (``warnings`` joined with `` | ``; ``source`` and ``frames`` repeat ``path``'s
    clip source and ``num_frames`` for readers of the earlier CSV layout)."""
    cells = []
    for c in CSV_COLUMNS:
        v = row.get(c)
        if c == "source":
            v = row.get("source") or row.get("path")
        elif c == "frames":
            v = row.get("num_frames")
        elif c == "warnings":
            v = " | ".join(v or [])
        cells.append("" if v is None else str(v))
    return cells


def _from_csv(d: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {k: (v if v != "" else None) for k, v in d.items() if k in CSV_COLUMNS}
    for k in _INT_COLUMNS:
        if row.get(k) is not None:
            row[k] = int(row[k])
    for k in _FLOAT_COLUMNS:
        if row.get(k) is not None:
            row[k] = float(row[k])
    row["warnings"] = row["warnings"].split(" | ") if row.get("warnings") else []
    return row


def load_rows(path: str, fmt: str) -> list[dict[str, Any]]:
    """The complete rows of a result file (a missing file has none); a last line cut short is dropped."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    if fmt == "csv":
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # cut short mid-row
        reader = csv.DictReader(lines)
        if reader.fieldnames and "path" not in reader.fieldnames:
            raise ValueError(f"{path} is not a vqametric result file (no path column); refusing to resume into it")
        return [_from_csv(d) for d in reader if d.get("path") and None not in d.values()]
    if fmt == "json" and text.strip().endswith("]"):
        try:
            return list(json.loads(text))
        except ValueError:
            pass  # fall through to line by line
    rows = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        line = line.strip().rstrip(",")
        if fmt == "json" and line in ("[", "]", ""):
            continue
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break  # the last line, cut short by a crash
            raise ValueError(f"{path}, line {i + 1}: not a JSON row; refusing to resume into this file") from None
        if not isinstance(row, dict) or "path" not in row:
            raise ValueError(f"{path}, line {i + 1}: not a vqametric result row; refusing to resume into this file")
        rows.append(row)
    return rows


class RowWriter:
    """Writes rows to ``path`` (or an open text ``stream``) in ``fmt``, flushing each one.

    ``existing``: rows written first (a resumed file is rewritten with its complete rows, through a
    temporary file and an atomic rename, so that a crash during the rewrite loses nothing)."""

    def __init__(self, path: str | None, fmt: str, existing: list[dict[str, Any]] | None = None,
                 stream: TextIO | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown result format {fmt!r}; use one of {FORMATS}")
        self.path, self.fmt = path, fmt
        self.rows_written = 0
        self._since_sync, self._synced_at = 0, time.monotonic()
        self._closed = False
        self._first = True
        if path is None:
            self.f = stream
        else:
            if existing:
                tmp = f"{path}.tmp-{os.getpid()}"
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    self.f = f
                    self._start()
                    for row in existing:
                        self._put(row)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                self.f = open(path, "a", encoding="utf-8", newline="")
                return
            self.f = open(path, "w", encoding="utf-8", newline="")
        self._start()
        self.f.flush()

    def _start(self) -> None:
        self._first = True
        if self.fmt == "csv":
            self.f.write(",".join(CSV_COLUMNS) + "\r\n")
        elif self.fmt == "json":
            self.f.write("[")

    def _put(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf).writerow(csv_row(row))
            text = buf.getvalue()
        else:
            text = json.dumps(row, allow_nan=False, ensure_ascii=False)
            if self.fmt == "json":
                text = ("\n" if self._first else ",\n") + text
            else:
                text += "\n"
        self.f.write(text)  # one write per row: a row is in the file whole or not at all (up to a crash)
        self._first = False
        self.rows_written += 1

    def write(self, row: dict[str, Any]) -> None:
        self._put(row)
        self.f.flush()
        self._since_sync += 1
        if self._since_sync >= FSYNC_ROWS or time.monotonic() - self._synced_at >= FSYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        if self.path is None:
            return
        try:
            os.fsync(self.f.fileno())
        except (OSError, ValueError):
            pass
        self._since_sync, self._synced_at = 0, time.monotonic()

    def close(self) -> None:
        """End the file (``]`` for JSON), flush and fsync it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.fmt == "json":
            self.f.write("]\n" if self._first else "\n]\n")
        self.f.flush()
        if self.path is not None:
            self.sync()
            self.f.close()
