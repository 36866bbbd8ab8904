"""Scoring clips one by one, in this process or in worker processes, as plain result rows.

A row is a plain dict: ``path`` (as given), ``status`` (``"ok"`` / ``"failed"``), ``score``,
``error`` (the exception's class name) and ``message``, ``warnings`` (the warnings raised while
the clip was scored, e.g. a truncated file), ``dominant_distortion``, ``model``,
``model_version``, ``num_frames``, ``seconds`` (wall time of the clip), ``size`` and ``mtime_ns``
(of the file, to recognise it on ``--resume``), and the rest of :meth:`QualityResult.to_dict`.

Workers (``jobs > 1``) are ``spawn`` processes (never ``fork``: PyTorch's thread pool does not
survive it), one scorer each, with ``max(1, cores // jobs)`` PyTorch (and ONNX Runtime) threads.
They ignore SIGINT (the parent decides when to stop) and exit when the parent dies. The Ray Data
engine (:mod:`~vqametric.corpus.ray_engine`) builds its actors' scorers and rows with the same
:func:`build_worker_scorer` and :func:`score_in_worker`.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from ..errors import BackendUnavailable


def file_stamp(path: str) -> tuple[int | None, int | None]:
    """``(size, mtime_ns)`` of ``path``, ``(None, None)`` when it cannot be read."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None, None
    return st.st_size, st.st_mtime_ns


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(jobs: int) -> int:
    return max(1, cpu_count() // max(1, jobs))


def score_one(scorer: Any, path: str, fps: float | None = None, max_pixels: int | None = None) -> dict[str, Any]:
    """Score one clip -> its row. Never raises for the clip's own failures (they become the row's
    ``error``); warnings raised while scoring are recorded in the row instead of printed."""
    size, mtime = file_stamp(path)
    row: dict[str, Any] = {"path": path, "status": "failed", "score": None, "error": None, "message": None,
                           "warnings": [], "dominant_distortion": None, "model": None, "model_version": None,
                           "num_frames": None, "seconds": None, "size": size, "mtime_ns": mtime, "source": path}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _, (result,) = scorer.score([path], fps=fps, max_pixels=max_pixels)
        except Exception as e:  # noqa: BLE001 - one clip's failure, whatever it is, never stops the run
            result = None
            row["error"], row["message"] = type(e).__name__, str(e)
    row["seconds"] = round(time.perf_counter() - t0, 4)
    row["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    if result is None:
        return row
    d = result.to_dict()
    row.update({k: v for k, v in d.items() if k not in row or row[k] is None})
    row["num_frames"] = (result.clip or {}).get("num_frames")
    if result.parse_ok and result.score is not None and math.isfinite(result.score):
        row["status"] = "ok"
    else:
        failure = (result.sampling or {}).get("generation", {}).get("failure") or "no answer"
        row["error"], row["message"] = "ParseFailure", f"the model's answer could not be parsed ({failure})"
    return row


# -- worker processes --------------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)  # the parent died (SIGKILL): do not linger as an orphan


def _init_worker(factory: Callable, model: Any, device: str | None, runtime: str | None, threads: int,
                 parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _worker.update(build_worker_scorer(factory, model, device, runtime, threads))


def build_worker_scorer(factory: Callable, model: Any, device: str | None, runtime: str | None,
                        threads: int) -> dict[str, Any]:
    """A worker's state: ``{"scorer": ...}``, or ``{"error": (class name, message)}`` when the scorer
    cannot be built (reported with every clip the worker is given, see :func:`score_in_worker`).
    Sets this process's PyTorch, decoder and ONNX Runtime threads to ``threads``: N workers share the
    cores, so each gets its share, not all of them."""
    import torch  # heavy: torch (only a worker needs it)

    from ..io.decode import set_decoder_threads  # heavy: torch, av

    torch.set_num_threads(threads)
    set_decoder_threads(threads)
    try:
        scorer = factory(model, device, runtime)
        limit_runtime_threads(scorer, threads)
        return {"scorer": scorer}
    except Exception as e:  # noqa: BLE001 - reported with every clip this worker is given
        return {"error": (type(e).__name__, str(e))}


def limit_runtime_threads(scorer: Any, threads: int) -> None:
    """Give an ONNX Runtime head ``threads`` intra-op threads (its default is every core)."""
    model = getattr(scorer, "model", None)
    if getattr(scorer, "runtime", None) == "onnx" and hasattr(model, "path") and hasattr(model, "session"):
        from ..backends.onnx_runtime import OnnxHead  # heavy: torch
        scorer.model = OnnxHead(model.path, getattr(scorer, "device", "cpu"), threads=threads)


def score_in_worker(state: dict[str, Any], path: str, fps: float | None = None,
                    max_pixels: int | None = None) -> dict[str, Any]:
    """The row of ``path`` scored with a worker's ``state`` (from :func:`build_worker_scorer`)."""
    if "error" in state:
        name, message = state["error"]
        size, mtime = file_stamp(path)
        return {"path": path, "status": "failed", "score": None, "error": name,
                "message": f"the worker could not build its scorer: {message}", "warnings": [], "size": size,
                "mtime_ns": mtime, "source": path}
    return score_one(state["scorer"], path, fps, max_pixels)


def _work(path: str, fps: float | None, max_pixels: int | None) -> dict[str, Any]:
    return score_in_worker(_worker, path, fps, max_pixels)


def score_in_process(scorer: Any, paths: Iterable[str], fps: float | None = None, max_pixels: int | None = None,
                     stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Rows of ``paths`` scored here, in order; stops before the next clip once ``stop()`` is true."""
    for path in paths:
        if stop():
            return
        yield score_one(scorer, path, fps, max_pixels)


def score_in_workers(factory: Callable, model: Any, paths: Iterable[str], jobs: int, device: str | None = None,
                     runtime: str | None = None, fps: float | None = None, max_pixels: int | None = None,
                     stop: Callable[[], bool] = lambda: False,
                     abandon: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Rows of ``paths`` scored by ``jobs`` spawn workers, in order of completion.

    ``factory(model, device, runtime)`` builds each worker's scorer (it must be picklable: a module
    level function such as :func:`vqametric.functional.get_scorer`). At most ``2 * jobs`` clips are
    queued at a time. Once ``stop()`` is true no more clips are handed out and the clips in flight
    are finished; once ``abandon()`` is true they are dropped and the workers terminated."""
    threads = threads_per_worker(jobs)
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by each spawned child's OpenMP as it starts
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker,
                               initargs=(factory, model, device, runtime, threads, os.getpid()))
    todo = iter(paths)
    pending: dict[Future, str] = {}
    abandoned = False
    try:
        _start_workers(pool, jobs)
        while True:
            while not stop() and len(pending) < 2 * jobs:
                path = next(todo, None)
                if path is None:
                    break
                try:
                    pending[pool.submit(_work, path, fps, max_pixels)] = path
                except BrokenProcessPool as e:
                    raise WorkersFailed(f"the worker processes died ({e}); the rows written so far are kept, "
                                        "and --resume scores the rest") from e
            if not pending:
                return
            done, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    row = fut.result()
                except BrokenProcessPool as e:
                    raise WorkersFailed(f"a worker process died while scoring one of {sorted(pending.values())} "
                                        f"({e}); the rows written so far are kept, and --resume scores the rest"
                                        ) from e
                pending.pop(fut)
                yield row
            if abandon():
                abandoned = True
                return
    finally:
        if abandoned or pending:
            for p in list((getattr(pool, "_processes", None) or {}).values()):
                p.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_before


def _start_workers(pool: ProcessPoolExecutor, jobs: int) -> None:
    """Start the ``jobs`` workers with SIGINT ignored: they inherit that from their first instant, so a
    Ctrl-C (sent to the whole process group) never interrupts one while it starts up."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        for _ in range(jobs):
            pool.submit(int, 0)  # each submit with no idle worker starts one
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class WorkersFailed(RuntimeError):
    """The worker pool broke (a worker died while starting, or the pool could not be used again)."""


class EngineUnavailable(BackendUnavailable):
    """``engine="ray"`` cannot run: Ray Data is not installed (``pip install "vqametric[ray]"``) or no
    Ray cluster answered at the address given."""
