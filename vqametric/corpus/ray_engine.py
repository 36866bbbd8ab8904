"""The Ray Data engine: ``vqametric score --engine ray`` and ``score_paths(..., engine="ray")``.

The paths become a ``ray.data.Dataset`` (``from_items``, blocks of 1 to :data:`MAX_BLOCK_ROWS`
paths) scored by ``map_batches`` over a fixed pool of ``jobs`` actors: :class:`ScoreActor`, a
callable class that builds one scorer per actor and makes the local engine's rows
(:func:`~vqametric.corpus.runner.score_in_worker`). Each actor reserves its share of the
cluster's CPUs (at most one node's worth; one GPU each with a CUDA ``device``) and runs that many
PyTorch, ONNX Runtime and decoder threads, as a local worker process does.

Rows travel through a hub actor (:class:`_Hub`): an actor hands in each row as its clip is done,
and the driver takes them every :data:`POLL_S` seconds, so rows reach the caller, and the output
file, clip by clip whatever the block size. Once ``stop()`` is true the hub lets no new clip
start; the clips in flight are finished and returned. Once ``abandon()`` is true (or the caller
stops iterating) the actors are ended, dropping their clips in flight. A dead actor ends the run
with :class:`~vqametric.corpus.runner.WorkersFailed`, as a dead worker process does (actors are
not restarted: a clip that crashes its process would crash every retry).

This module is imported only when the Ray engine is asked for; without Ray it raises
:class:`~vqametric.corpus.runner.EngineUnavailable`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import threading
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from .runner import EngineUnavailable, WorkersFailed, build_worker_scorer, cpu_count, score_in_worker

INSTALL = 'pip install "vqametric[ray]"'
try:
    import ray
    import ray.data
except ImportError as e:
    raise EngineUnavailable(f"--engine ray needs Ray Data, which is not installed here: {INSTALL}") from e

MAX_BLOCK_ROWS = 64  # paths a block: the driver keeps Ray Data's statistics of every block (about 1.5 KB)
POLL_S = 0.1  # how often the driver takes the rows and looks at stop() and abandon()


def connect(address: str | None = None) -> bool:
    """Connect this process to Ray: ``address`` (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``),
    else ``$RAY_ADDRESS``, else a new local Ray with this machine's cores (its workers at normal
    priority, as local worker processes). An existing connection is kept. Returns whether this
    call connected (the caller then ends it with :func:`disconnect`)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # Ray runs its workers at niceness 15 by default; the local engine's workers run at 0
        options.update(num_cpus=cpu_count(), include_dashboard=False, _system_config={"worker_niceness": 0})
    try:
        ray.init(address=address, **options)
    except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ...
        where = f" at {address}" if address else ""
        raise EngineUnavailable(f"cannot start or reach Ray{where}: {type(e).__name__}: {e}") from e
    return True


def disconnect() -> None:
    ray.shutdown()


def actor_resources(jobs: int, device: str | None) -> tuple[float, float, int]:
    """``(cpus, gpus, threads)`` for each of ``jobs`` actors: the cluster's CPUs shared out (at most
    one node's worth; a fraction when ``jobs`` exceeds them), one GPU each with a CUDA ``device``,
    and ``max(1, int(cpus))`` threads."""
    total = float(ray.cluster_resources().get("CPU", 1.0))
    node = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=total)
    cpus = min(total / jobs, node or total)
    cpus = float(int(cpus)) if cpus >= 1 else math.floor(cpus * 1e4) / 1e4  # Ray's resource precision
    gpus = 1.0 if str(device or "").startswith("cuda") else 0.0
    return cpus, gpus, max(1, int(cpus))


class _Hub:
    """The run's meeting point (an actor): actors ask it before each clip (:meth:`begin`: ``False``
    once the run stops) and hand it each row (:meth:`end`); the driver takes the rows
    (:meth:`take`), closes it (:meth:`close`) and ends the actors (:meth:`members`)."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.busy, self.closed, self.actors = 0, False, []

    def join(self, actor: Any) -> None:
        self.actors.append(actor)

    def members(self) -> list:
        return self.actors

    def begin(self) -> bool:
        if not self.closed:
            self.busy += 1
        return not self.closed

    def end(self, row: bytes) -> None:
        self.rows.append(row)
        self.busy -= 1

    def close(self) -> None:
        self.closed = True

    def take(self) -> tuple[list[bytes], int]:
        """The rows handed in since the last call (pickled), and the number of clips in flight."""
        rows, self.rows = self.rows, []
        return rows, self.busy


class ScoreActor:
    """Ray Data's callable class: one scorer per actor, built once.

    A call takes a block's paths, ``{"path": (n,) str}``, scores them one by one, handing each row
    (pickled) to the hub as it is done, and returns ``{"scored": (1,) int}``. ``cwd``: the driver's
    working directory, entered when it exists here, so that relative paths mean what they meant
    to the driver."""

    def __init__(self, factory: Callable, model: Any, device: str | None, runtime: str | None, threads: int,
                 hub: Any, cwd: str):
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.state = build_worker_scorer(factory, model, device, runtime, threads)
        self.hub = hub
        hub.join.remote(ray.get_runtime_context().current_actor)

    def __call__(self, batch: dict[str, np.ndarray], fps: float | None = None,
                 max_pixels: int | None = None) -> dict[str, np.ndarray]:
        scored = 0
        for path in batch["path"]:
            if not ray.get(self.hub.begin.remote()):
                break  # the run stops: no new clip
            row = score_in_worker(self.state, str(path), fps, max_pixels)
            ray.get(self.hub.end.remote(pickle.dumps(row)))  # in the hub before the next clip starts
            scored += 1
        return {"scored": np.array([scored])}


def _dataset(factory: Callable, model: Any, paths: list[str], jobs: int, device: str | None,
             runtime: str | None, fps: float | None, max_pixels: int | None, hub: Any) -> Any:
    """The dataset that scores ``paths``: blocks of 1 to :data:`MAX_BLOCK_ROWS` paths, at least 16
    blocks an actor (the last block's clips may keep one actor busy while the others are done)."""
    per_block = max(1, min(MAX_BLOCK_ROWS, len(paths) // (16 * jobs)))
    blocks = -(-len(paths) // per_block)
    cpus, gpus, threads = actor_resources(jobs, device)
    with warnings.catch_warnings():
        # Ray warns of its own deprecated settings when it copies its context, and of the max_restarts
        # keyword (no named parameter for it yet)
        warnings.simplefilter("ignore")
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
        ds = ds.map_batches(ScoreActor, batch_size=None, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=min(jobs, blocks),
                                                               max_tasks_in_flight_per_actor=1),
                            fn_constructor_args=(factory, model, device, runtime, threads, hub, os.getcwd()),
                            fn_kwargs={"fps": fps, "max_pixels": max_pixels}, num_cpus=cpus,
                            num_gpus=gpus or None, max_restarts=0)
    ds.context.enable_progress_bars = ds.context.print_on_execution_start = False
    return ds


def _drive(ds: Any, done: threading.Event, failed: list[BaseException]) -> None:
    """Run ``ds`` to its end (its output is only counts), then set ``done``; an exception goes to ``failed``."""
    try:
        for _ in ds.iter_batches(batch_size=None):
            pass
    except BaseException as e:  # noqa: BLE001 - handed to the driver's thread
        failed.append(e)
    finally:
        done.set()


def _failure(e: BaseException) -> WorkersFailed:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    why = lines[-1].split(". ")[0] if lines else ""  # the gist: Ray's messages run on with advice
    return WorkersFailed(f"the Ray actors failed ({type(e).__name__}: {why}); the rows written so far are kept, "
                         "and --resume scores the rest")


def score_with_ray(factory: Callable, model: Any, paths: list[str], jobs: int, device: str | None = None,
                   runtime: str | None = None, fps: float | None = None, max_pixels: int | None = None,
                   stop: Callable[[], bool] = lambda: False,
                   abandon: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Rows of ``paths`` scored by ``jobs`` Ray Data actors, in order of completion (see the module
    docstring). Call :func:`connect` first. ``factory(model, device, runtime)`` builds each actor's
    scorer; it is sent to the actors with cloudpickle."""
    hub = ray.remote(num_cpus=0)(_Hub).remote()
    ds = _dataset(factory, model, paths, jobs, device, runtime, fps, max_pixels, hub)
    done, failed = threading.Event(), []
    driver = threading.Thread(target=_drive, args=(ds, done, failed), name="vqametric-ray", daemon=True)
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # no chatter on stderr: the command reports progress and failures itself
    driver.start()
    closing = False
    try:
        while True:
            if stop() and not closing:
                closing = True
                hub.close.remote()
            if abandon():
                return
            finished = done.is_set()  # before the take: every row of a finished run is in the hub
            rows, busy = ray.get(hub.take.remote())
            for row in rows:
                yield pickle.loads(row)
            if failed:
                raise _failure(failed[0]) from failed[0]
            if finished or (closing and busy == 0):
                return
            done.wait(POLL_S)
    finally:
        with contextlib.suppress(Exception):  # Ray itself may be gone: the first error is the one to report
            hub.close.remote()
            if not done.is_set():  # blocks left, perhaps clips in flight (abandoned): end the actors
                for actor in ray.get(hub.members.remote()):
                    ray.kill(actor)
        driver.join(timeout=30)  # before Ray may be shut down: Ray Data would start a new one for the thread
        logger.setLevel(level)
