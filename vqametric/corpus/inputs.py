"""Which clips a corpus run scores: paths, folders, manifests and paths read from stdin.

Paths are kept as given (a relative path stays relative) and deduplicated in order of first
appearance. A folder is walked recursively in sorted order, keeping files whose name matches
``glob`` (default: the common video and image extensions, any case); hidden files and folders
(names starting with ``.``) are skipped. A file named explicitly is always kept, whatever its
extension. ``-`` stands for a list of paths on stdin, one per line.

Manifests (``--manifest FILE``): a CSV file with a ``path`` column, JSON Lines with a ``path``
key, or a plain list of paths, one per line (blank lines and lines starting with ``#`` are
skipped). Relative paths in a manifest are relative to the manifest's folder, as in every
vqametric manifest (``data/list.txt`` naming ``a.mp4`` gives ``data/a.mp4``).
"""
from __future__ import annotations

import csv
import fnmatch
import json
import os
import sys
from typing import Iterable, Iterator, TextIO

from ..errors import InvalidOption

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts",
                    ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".mxf", ".y4m", ".ivf", ".h264", ".264", ".h265",
                    ".265", ".hevc", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS


class InputError(InvalidOption):
    """An input that names no clips: a missing manifest, a manifest without paths, no files found."""


def _matches(name: str, rel: str, glob: str | None) -> bool:
    if glob is None:
        return name.lower().endswith(DEFAULT_EXTENSIONS)
    return fnmatch.fnmatch(rel if "/" in glob else name, glob)


def walk_folder(folder: str, glob: str | None = None) -> Iterator[str]:
    """Files under ``folder`` (recursively, sorted) whose name matches ``glob`` (a pattern on the
    file name, or on the path below ``folder`` when it contains ``/``)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if _matches(name, rel, glob):
                yield path


def read_path_lines(stream: Iterable[str]) -> Iterator[str]:
    """Paths from lines of text: stripped, without blank lines and ``#`` comments."""
    for line in stream:
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def read_manifest(manifest: str, stdin: TextIO | None = None) -> list[str]:
    """The paths a manifest lists (see the module docstring); ``-`` reads the manifest from stdin."""
    if manifest == "-":
        text, base = (stdin or sys.stdin).read(), ""
    else:
        try:
            with open(manifest, encoding="utf-8-sig", newline="") as f:
                text = f.read()
        except OSError as e:
            raise InputError(f"cannot read manifest {manifest}: {e.strerror or e}") from e
        base = os.path.dirname(manifest)
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    lower = manifest.lower()
    if lower.endswith((".jsonl", ".ndjson")) or first.startswith("{"):
        paths = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InputError(f"{manifest}, line {i}: not valid JSON ({e})") from e
            if not isinstance(row, dict) or not row.get("path"):
                raise InputError(f"{manifest}, line {i}: no \"path\" key")
            paths.append(str(row["path"]))
    elif lower.endswith((".csv", ".tsv")) or "path" in _header(first):
        reader = csv.DictReader(lines, delimiter="\t" if lower.endswith(".tsv") else ",")
        if "path" not in (reader.fieldnames or []):
            raise InputError(f"{manifest}: a CSV manifest needs a \"path\" column (found {reader.fieldnames})")
        paths = [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
    else:
        paths = list(read_path_lines(lines))
    return [p if os.path.isabs(p) else os.path.join(base, p) for p in paths]


def _header(line: str) -> list[str]:
    return [c.strip().strip('"').lower() for c in line.split(",")] if "," in line else []


def collect_paths(paths: Iterable[str] = (), glob: str | None = None, manifests: Iterable[str] = (),
                  stdin: TextIO | None = None) -> list[str]:
    """Every clip named by ``paths`` (files, folders, ``-`` for stdin) and ``manifests``, in order,
    each once. Raises :class:`InputError` when nothing is named at all."""
    out: dict[str, None] = {}
    for p in paths:
        p = os.fspath(p)
        if p == "-":
            for q in read_path_lines(stdin or sys.stdin):
                out.setdefault(q)
        elif os.path.isdir(p):
            for q in walk_folder(p, glob):
                out.setdefault(q)
        else:
            out.setdefault(p)  # a missing file is reported as that clip's failure, not a usage error
    for m in manifests:
        for q in read_manifest(m, stdin):
            out.setdefault(q)
    if not out:
        what = f"matching {glob!r}" if glob else "with a video or image extension"
        raise InputError(f"no clips to score: the paths, folders and manifests given name no files {what}")
    return list(out)
