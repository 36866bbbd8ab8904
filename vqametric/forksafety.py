"""Scoring in a process forked after the parent scored.

PyTorch's CPU thread pool (OpenMP) does not survive ``fork``: once a process has run a parallel
operation, a child started with ``fork`` (the default start method of ``multiprocessing`` on Linux
before Python 3.14) hangs at its first parallel operation. ``spawn`` and ``forkserver`` children
are unaffected, and vqametric's own worker pools use them.

So that a forked child scores instead of hanging, a child forked after this process scored runs
PyTorch on one thread (parallel operations then run inline, without the pool). The child's
scores are the same, only slower; start workers with ``spawn`` or ``forkserver`` for full speed.
"""
from __future__ import annotations

import os

_used = False


def mark_used() -> None:
    """Record that this process has scored (and so has run PyTorch's thread pool)."""
    global _used
    _used = True


def _after_fork_in_child() -> None:
    if _used:
        import torch  # already imported by the parent: only the module object is looked up

        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
