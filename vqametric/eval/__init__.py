"""Evaluation: score a manifest of videos with a model and correlate the scores with their MOS.

>>> report = vqametric.eval.evaluate("vqametric-fast", "val.csv")      # doctest: +SKIP
>>> report["srcc"], report["plcc"], report["failures"]                  # doctest: +SKIP

The manifest is a training manifest (CSV or JSON Lines with ``path`` and ``mos`` on 1-5; see
:mod:`vqametric.train.manifest`). Correlations: SRCC, KRCC, PLCC after the standard 4-parameter
logistic fit (``plcc``; needs scipy, else ``None``) and on raw scores (``plcc_raw``).
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

from ..errors import VQAMetricError
from ..train.manifest import load_manifest
from ..train.metrics import correlation_report


def evaluate(model: str | os.PathLike, manifest: str | os.PathLike, device: str | None = None,
             runtime: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score every video of ``manifest`` with ``model``; return correlations with the MOS.

    Videos that fail to decode, or whose answer could not be parsed, are listed in ``failures``
    and left out of the correlations (never scored as a constant).
    """
    from ..functional import get_scorer  # heavy: torch

    rows = load_manifest(manifest)
    scorer = get_scorer(model, device, runtime)
    scores, failures = [], []
    for i, r in enumerate(rows):
        try:
            _, (res,) = scorer.score([r.path])
            if math.isnan(res.score):
                failures.append({"path": r.path, "error": "ParseFailure"})
            else:
                scores.append({"path": r.path, "mos": r.mos, "score": res.score})
        except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, never stops the batch
            failures.append({"path": r.path, "error": f"{type(e).__name__}: {e}"})
        if progress:
            progress(i + 1, len(rows))
    if len(scores) < 3:
        raise VQAMetricError(f"only {len(scores)} of {len(rows)} video(s) could be scored; correlations need at "
                             "least 3 (see the failures)")
    report = correlation_report([s["score"] for s in scores], [s["mos"] for s in scores])
    return {"model": scorer.card.name, "version": scorer.card.version, "manifest": os.fspath(manifest),
            **report, "scored": len(scores), "failures": failures, "scores": scores}


__all__ = ["evaluate"]
