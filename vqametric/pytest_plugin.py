"""pytest plugin (entry point ``pytest11: vqametric``): quality assertions and golden scores.

>>> def test_encoder(vqametric_quality, tmp_path):                       # doctest: +SKIP
...     out = my_encoder("src.y4m", tmp_path / "out.mp4", crf=28)
...     vqametric_quality(out, min_score=3.0, baseline="golden/out.json", name="out.mp4")

``baseline`` is a baseline file (``vqametric baseline create`` writes the same format); relative
paths are resolved against the test file's folder. ``pytest --vqametric-update-baseline`` writes
the current scores into the golden files instead of comparing (snapshot testing).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pytest

from .errors import InvalidBaseline
from .regression import (check_model, clip_record, compare_clip, file_sha256, load_records, make_baseline,
                         model_identity, write_json)
from .regression.compare import DEFAULT_MAX_DROP, DEFAULT_MAX_SEGMENT_DROP, Tolerances
from .registry import DEFAULT_MODEL

UPDATE_OPTION = "--vqametric-update-baseline"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vqametric", "video quality assertions (vqametric)")
    group.addoption(UPDATE_OPTION, action="store_true", default=False,
                    help="write current scores into the golden files passed as baseline= instead of comparing")


def assert_quality(video: Any, min_score: float | None = None, baseline: str | os.PathLike | None = None,
                   max_drop: float = DEFAULT_MAX_DROP, max_segment_drop: float = DEFAULT_MAX_SEGMENT_DROP,
                   relative: bool = False, model: str = DEFAULT_MODEL, runtime: str | None = None,
                   device: str | None = None, name: str | None = None, update: bool = False,
                   fps: float | None = None) -> Any:
    """Score ``video`` (any input :func:`vqametric.score` takes) and assert on its quality.

    ``min_score``: the 1-5 score must reach it. ``baseline``: a golden file; the clip's record is
    the one whose path is ``name``, or without ``name`` the one of the path ``video`` or else the
    file's only record (so a clip written to a new temporary path each run still finds it).
    Its model must be the one scoring now, and the score and every segment may fall by at most
    ``max_drop`` / ``max_segment_drop`` (points on the 1-5 scale, fractions of the golden score with
    ``relative=True``). ``update=True`` writes the record into ``baseline`` instead (created if
    missing). Returns the :class:`~vqametric.QualityResult`; raises ``AssertionError`` on a failure.
    """
    from .functional import get_scorer  # heavy: torch (the plugin loads with every pytest run)

    if baseline is not None and name is None and not isinstance(video, (str, os.PathLike)):
        raise ValueError("an in-memory video needs name= to be found in a baseline file")
    scorer = get_scorer(model, device, runtime)
    _, (result,) = scorer.score([video], fps=fps)
    if min_score is not None and result.score < min_score:
        raise AssertionError(f"{name or result.source}: quality {result.score:.4f} is below min_score {min_score:g}")
    if baseline is None:
        return result
    is_path = isinstance(video, (str, os.PathLike))
    record = clip_record(result, name or os.fspath(video), model_identity(scorer),
                         file_sha256(video) if is_path else None)
    tol = Tolerances(max_drop, max_segment_drop, relative)
    if update:
        _write_record(os.fspath(baseline), record, only=name is None)
    else:
        _compare(os.fspath(baseline), record, tol, only=name is None)
    return result


def _golden_records(path: str) -> list[dict[str, Any]]:
    return load_records(path) if os.path.exists(path) else []


def _find(records: list[dict[str, Any]], key: str, only: bool) -> int | None:
    """Index of the record of ``key``; else, with ``only``, of the file's only record."""
    keys = [os.path.normpath(r["path"]) for r in records]
    if key in keys:
        return keys.index(key)
    return 0 if only and len(records) == 1 else None


def _write_record(path: str, record: dict[str, Any], only: bool) -> None:
    records = _golden_records(path)
    i = _find(records, record["path"], only)
    if i is None:
        records.append(record)
    else:
        records[i] = record
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(make_baseline(records), path)


def _compare(path: str, record: dict[str, Any], tol: Tolerances, only: bool) -> None:
    hint = f"run `pytest {UPDATE_OPTION}` to write it"
    records = _golden_records(path)
    i = _find(records, record["path"], only)
    if i is None:
        raise AssertionError(f"no golden score for {record['path']} in {path} " +
                             ("(the file does not exist)" if not records else f"(it holds {len(records)} clips)")
                             + f"; {hint}")
    try:
        check_model([records[i]], record["model"], path)
    except InvalidBaseline as e:
        raise AssertionError(f"{e}; if the new model is intended, {hint.replace('write', 'rewrite')}") from None
    delta = compare_clip(records[i], record, tol)
    if delta.status != "pass":
        raise AssertionError(f"{record['path']} regressed against {path}: " + "; ".join(delta.reasons))


@pytest.fixture
def vqametric_quality(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """:func:`assert_quality` with ``update`` from ``--vqametric-update-baseline`` and relative
    ``baseline`` paths resolved against the test file's folder."""
    update = bool(request.config.getoption(UPDATE_OPTION))
    folder = os.path.dirname(str(request.path))

    def check(video: Any, baseline: str | os.PathLike | None = None, **kwargs: Any) -> Any:
        if baseline is not None and not os.path.isabs(baseline):
            baseline = os.path.join(folder, baseline)
        return assert_quality(video, baseline=baseline, update=update, **kwargs)
    return check
