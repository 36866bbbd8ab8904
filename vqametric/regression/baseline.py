"""Baselines: golden scores of clips, stored as JSON whose structure is fixed by ``SCHEMA_VERSION``.

A baseline is ``{"schema_version": 1, "kind": "vqametric-baseline", "clips": [record, ...]}``.
A record holds everything needed to tell whether a later score may be compared with it::

    {"path": str (as given), "file_sha256": str | None, "score": float (1-5),
     "timeline": [{"start_frame", "end_frame", "start_time", "end_time", "score", "distortion",
                   "frozen"}, ...],
     "attribution": {distortion: severity in [0, 1]}, "dominant_distortion": str | None,
     "model": {"name": str, "version": str, "runtime": str | None, "weights_sha256": str | None},
     "sampling": {...}, "decode": {...}, "package_version": str}

:func:`load_records` also reads the list ``vqametric score --format json`` writes (no weights or
file hashes there: those fields are ``None``).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence

from .. import __version__
from ..errors import InvalidBaseline, VQAMetricError
from ..result import QualityResult

SCHEMA_VERSION = 1
BASELINE_KIND = "vqametric-baseline"
RECORD_KEYS = ("path", "file_sha256", "score", "timeline", "attribution", "dominant_distortion", "model",
               "sampling", "decode", "package_version")

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (cached by path, mtime and size)."""
    path = os.fspath(path)
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def model_identity(scorer: Any) -> dict[str, Any]:
    """``{"name", "version", "runtime", "weights_sha256"}`` of a built scorer.

    ``weights_sha256`` hashes the weights file the scorer loaded (``card.weights_path(runtime)``);
    ``None`` for scorers without one file (reasoning models)."""
    card, runtime = scorer.card, getattr(scorer, "runtime", None)
    try:
        weights = file_sha256(card.weights_path(runtime)) if runtime else None
    except VQAMetricError:
        weights = None
    return {"name": card.name, "version": card.version, "runtime": runtime, "weights_sha256": weights}


def clip_record(result: QualityResult | dict[str, Any], path: str, model: dict[str, Any] | None = None,
                sha256: str | None = None) -> dict[str, Any]:
    """A baseline record of one scored clip; ``model`` defaults to the result's name and version."""
    d = result.to_dict() if isinstance(result, QualityResult) else result
    version = __version__ if isinstance(result, QualityResult) else d.get("package_version")
    if model is None:
        model = {"name": d.get("model"), "version": d.get("model_version"), "runtime": None, "weights_sha256": None}
    return {"path": os.path.normpath(path), "file_sha256": sha256, "score": d["score"],
            "timeline": [dict(s) for s in d.get("timeline", [])], "attribution": dict(d.get("attribution", {})),
            "dominant_distortion": d.get("dominant_distortion"), "model": dict(model),
            "sampling": d.get("sampling", {}), "decode": d.get("clip", {}),
            "package_version": version}


def score_clips(scorer: Any, paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Score each file with ``scorer``: a record per file, or ``{"path", "error", "message"}`` where
    scoring failed (the others go on)."""
    model = model_identity(scorer)
    out = []
    for path in paths:
        try:
            _, (result,) = scorer.score([path])
            out.append(clip_record(result, os.fspath(path), model, file_sha256(path)))
        except Exception as e:  # noqa: BLE001 - one clip's failure is reported, the others go on
            out.append({"path": os.path.normpath(os.fspath(path)), "error": type(e).__name__, "message": str(e)})
    return out


def make_baseline(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The baseline document of ``records`` (failed clips are refused: a baseline holds scores only)."""
    bad = [r for r in records if "error" in r]
    if bad:
        raise InvalidBaseline("cannot make a baseline of clips that failed to score: " +
                              "; ".join(f"{r['path']}: {r['error']}: {r['message']}" for r in bad))
    return {"schema_version": SCHEMA_VERSION, "kind": BASELINE_KIND, "clips": [dict(r) for r in records]}


def write_json(doc: Any, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(doc, indent=2) + "\n")


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a baseline or of a ``vqametric score --format json`` file.

    Raises :class:`InvalidBaseline` for unreadable JSON, another structure or a newer schema."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise InvalidBaseline(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise InvalidBaseline(f"{path} is not JSON ({e}); pass a baseline or a `vqametric score --format json` "
                              "output") from e
    if isinstance(doc, dict) and doc.get("kind") == BASELINE_KIND:
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InvalidBaseline(f"{path} has baseline schema_version {version!r}; this vqametric "
                                  f"({__version__}) reads version {SCHEMA_VERSION}: recreate it with "
                                  "`vqametric baseline create`")
        clips = doc.get("clips")
        if not isinstance(clips, list) or not all(isinstance(c, dict) and "path" in c and "score" in c
                                                  for c in clips):
            raise InvalidBaseline(f"{path}: 'clips' must be a list of records with 'path' and 'score'")
        return [{**{k: None for k in RECORD_KEYS}, **c} for c in clips]
    if isinstance(doc, list) and all(isinstance(d, dict) and "source" in d for d in doc):
        return [clip_record(d, d["source"]) if not d.get("error") else
                {"path": os.path.normpath(d["source"]), "error": d["error"], "message": d.get("message", "")}
                for d in doc]
    raise InvalidBaseline(f"{path} is neither a vqametric baseline (a 'kind': '{BASELINE_KIND}' object) nor "
                          "the list `vqametric score --format json` writes")
