"""Scoring corpora: many clips, worker processes, streamed and resumable result files.

* :func:`score_paths` (Python) and :func:`run_score` (the ``vqametric score`` command, whose
  options :func:`add_corpus_options` adds) score files, folders, manifests and paths from stdin;
* :mod:`~vqametric.corpus.inputs` finds the clips, :mod:`~vqametric.corpus.runner` scores them
  (in this process or in ``spawn`` workers), :mod:`~vqametric.corpus.ray_engine` on Ray Data
  (``engine="ray"``, imported only then), :mod:`~vqametric.corpus.writer` streams the rows,
  :mod:`~vqametric.corpus.summary` sums them up.

Names are imported on first use, so that building the command line parser stays light.
See docs/scale.md.
"""
from ..lazy import lazy_getattr

_LAZY = {
    "score_paths": "api", "CorpusRun": "api", "add_corpus_options": "command", "run_score": "command",
    "collect_paths": "inputs", "read_manifest": "inputs", "DEFAULT_EXTENSIONS": "inputs", "score_one": "runner",
    "EngineUnavailable": "runner", "WorkersFailed": "runner",
    "Summary": "summary", "RowWriter": "writer", "load_rows": "writer",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
