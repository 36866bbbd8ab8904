"""``score_paths``: score a corpus from Python, with the command line's workers, streaming and resume.

>>> from vqametric.corpus import score_paths
>>> for row in score_paths(["clips/"], jobs=2, output="scores.jsonl", resume=True):  # doctest: +SKIP
...     print(row["path"], row["status"], row["score"], row["warnings"])

``engine="ray"`` scores on Ray Data instead of local worker processes (``jobs`` actors; see
:mod:`vqametric.corpus.ray_engine`).
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Iterable, Iterator

from ..registry import DEFAULT_MODEL, ModelCard, get_card
from ..sampling.overrides import sampled_card
from .inputs import collect_paths
from .runner import file_stamp, score_in_process, score_in_workers
from .writer import RowWriter, format_for, load_rows

ENGINES = ("local", "ray")


def _ray_engine() -> Any:
    """:mod:`vqametric.corpus.ray_engine`, imported on first use: it imports Ray, and raises
    :class:`~vqametric.corpus.runner.EngineUnavailable` without it."""
    return importlib.import_module(f"{__package__}.ray_engine")


def _default_factory(model: Any, device: str | None, runtime: str | None) -> Any:
    from ..functional import get_scorer  # heavy: torch
    return get_scorer(model, device, runtime)


class CorpusRun:
    """One corpus run: iterate it for the new rows, in order of completion (input order with ``jobs=1``).

    With ``output``, each row is written and flushed as its clip finishes (see
    :mod:`vqametric.corpus.writer`). With ``resume``, clips already in ``output`` (same path, size
    and modification time) are skipped: their rows are in :attr:`skipped` and stay in the file;
    rows of clips that changed since are dropped and the clips scored again; ``retry_failed``
    scores failed clips again too. :meth:`stop` finishes the clips in flight and ends the
    iteration; :meth:`abandon` drops them. The file is closed (a JSON array ended) either way.

    ``engine``: ``"local"`` (this process with ``jobs=1``, else ``jobs`` worker processes) or
    ``"ray"`` (``jobs`` Ray Data actors; Ray at ``ray_address``, else ``$RAY_ADDRESS``, else a
    local Ray started for the run and shut down by :meth:`close`). Without Ray installed,
    ``engine="ray"`` raises :class:`~vqametric.corpus.runner.EngineUnavailable`.
    """

    def __init__(self, paths: Iterable[str], model: str | os.PathLike | ModelCard = DEFAULT_MODEL,
                 sampling: dict[str, Any] | None = None, jobs: int = 1, output: str | None = None,
                 resume: bool = False, format: str | None = None, device: str | None = None,
                 runtime: str | None = None, fps: float | None = None, max_pixels: int | None = None,
                 scorer_factory: Callable | None = None, retry_failed: bool = False, scorer: Any = None,
                 engine: str = "local", ray_address: str | None = None):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if ray_address and engine != "ray":
            raise ValueError("a Ray address needs the Ray engine (--engine ray)")
        self.engine, self.ray_address = engine, ray_address
        self._ray = _ray_engine() if engine == "ray" else None
        self._ray_owned = False
        self.paths = list(paths)
        self.model = sampled_card(model, sampling)
        self.jobs, self.device, self.runtime, self.fps, self.max_pixels = jobs, device, runtime, fps, max_pixels
        self.factory = scorer_factory or _default_factory
        self.scorer = scorer
        self.output = os.fspath(output) if output is not None else None
        self.format = format_for(self.output, format) if self.output else None
        if self.output and self.format is None:
            raise ValueError(f"cannot tell the format of {self.output}; name it .jsonl, .csv or .json")
        if resume and not self.output:
            raise ValueError("resume needs an output file to resume from")
        existing = load_rows(self.output, self.format) if resume else []
        wanted = set(self.paths)
        kept: dict[str, dict[str, Any]] = {}
        for row in existing:
            p = row["path"]
            if p in wanted and (tuple(file_stamp(p)) != (row.get("size"), row.get("mtime_ns")) or
                                (retry_failed and row.get("status") != "ok")):
                continue  # changed since it was scored (or to be retried): score it again
            kept[p] = row
        self.existing = list(kept.values())
        self.skipped = [r for r in self.existing if r["path"] in wanted]
        done = {r["path"] for r in self.skipped}
        self.todo = [p for p in self.paths if p not in done]
        self._stop = self._abandon = False
        self.writer: RowWriter | None = None

    def stop(self) -> None:
        self._stop = True

    def abandon(self) -> None:
        self._stop = self._abandon = True

    @property
    def stopped(self) -> bool:
        return self._stop

    @property
    def in_process(self) -> bool:
        """Whether the clips are scored in this process (the local engine with ``jobs=1``)."""
        return self.engine == "local" and self.jobs == 1

    def prepare(self) -> None:
        """Load the model (scoring in this process) or connect to Ray, before the first clip;
        iteration does it when not done before."""
        if not self.todo:
            return
        if self._ray is not None:
            self._ray_owned = self._ray_owned or self._ray.connect(self.ray_address)
        elif self.in_process and self.scorer is None:
            self.scorer = self.factory(self.model, self.device, self.runtime)

    def open(self) -> None:
        """Create (or, resuming, rewrite) the output file; iteration does it when not done before."""
        if self.output and self.writer is None:
            self.writer = RowWriter(self.output, self.format, existing=self.existing)

    def _rows(self) -> Iterator[dict[str, Any]]:
        if not self.todo:
            return iter(())
        self.prepare()
        if self.in_process:
            return score_in_process(self.scorer, self.todo, self.fps, self.max_pixels, lambda: self._stop)
        if self._ray is not None:
            return self._ray.score_with_ray(self.factory, self.model, self.todo, self.jobs, self.device,
                                            self.runtime, self.fps, self.max_pixels, lambda: self._stop,
                                            lambda: self._abandon)
        return score_in_workers(self.factory, self.model, self.todo, self.jobs, self.device, self.runtime,
                                self.fps, self.max_pixels, lambda: self._stop, lambda: self._abandon)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.open()
        rows = self._rows()
        try:
            for row in rows:
                if self.writer is not None:
                    self.writer.write(row)
                yield row
                if self._abandon:
                    break
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
            self.close()

    def close(self) -> None:
        """Close the output file, and the Ray this run started. Safe to call twice."""
        if self.writer is not None:
            self.writer.close()
        if self._ray_owned:
            self._ray_owned = False
            self._ray.disconnect()


def score_paths(paths: Iterable[str], model: str | os.PathLike | ModelCard = DEFAULT_MODEL,
                sampling: dict[str, Any] | None = None, jobs: int = 1, output: str | None = None,
                resume: bool = False, glob: str | None = None, manifests: Iterable[str] = (),
                **options: Any) -> CorpusRun:
    """Score the clips named by ``paths`` (files, folders, ``-`` for stdin) and ``manifests``.

    Returns a :class:`CorpusRun`: iterate it for the rows (plain dicts, see
    :mod:`vqametric.corpus.runner`) as clips finish; ``list(score_paths(...))`` scores them all.
    ``sampling``: overrides such as ``{"num_segments": 8}``; ``jobs``: worker processes;
    ``output``: a ``.jsonl``/``.csv``/``.json`` file written as rows arrive; ``resume``: skip the
    clips already in ``output``. Other ``options``: ``device``, ``runtime``, ``fps``,
    ``max_pixels``, ``format``, ``retry_failed``, ``scorer_factory``, ``engine`` (``"local"`` or
    ``"ray"``) and ``ray_address`` (see :class:`CorpusRun`).
    """
    return CorpusRun(collect_paths(paths, glob, manifests), model=model, sampling=sampling, jobs=jobs,
                     output=output, resume=resume, **options)
