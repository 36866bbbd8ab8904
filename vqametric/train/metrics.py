"""Evaluation statistics: SRCC, PLCC after the 4-parameter logistic fit, Kendall tau-b.

SRCC and Kendall tau are computed here (average ranks for ties) and need only numpy. PLCC is
reported both raw and after the standard monotonic 4-parameter logistic mapping of predictions
to MOS (VQEG): ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, fitted by least squares
with ``scipy.optimize.curve_fit``. Without scipy the fitted PLCC is ``None`` (never silently the
raw value).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=np.float64)
    sa = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sa[j + 1] == sa[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


def srcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Spearman rank-order correlation."""
    return pearson(rankdata(pred), rankdata(mos))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b (ties in either variable handled); 0 when one side is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    s = (dx * dy).sum()
    d = np.sqrt((dx != 0).sum() * (dy != 0).sum())
    return float(s / d) if d > 0 else 0.0


def logistic4(x, b1, b2, b3, b4):
    """The VQEG 4-parameter logistic."""
    with np.errstate(over="ignore"):
        return (b1 - b2) / (1.0 + np.exp(-(x - b3) / np.abs(b4))) + b2


def _logistic4_jac(x, b1, b2, b3, b4):
    """Analytic Jacobian (finite differences stall on parameters that start at exactly 0)."""
    a = max(abs(b4), 1e-12)
    z = (x - b3) / a
    sg = 1.0 / (1.0 + np.exp(-z))
    ds = (b1 - b2) * sg * (1.0 - sg)
    return np.stack([sg, 1.0 - sg, -ds / a, -ds * z * np.sign(b4 if b4 != 0 else 1.0) / a], 1)


def fit_logistic4(pred: Sequence[float], mos: Sequence[float]) -> np.ndarray | None:
    """Least-squares parameters ``(b1, b2, b3, b4)`` of :func:`logistic4`, or None without scipy."""
    try:
        from scipy.optimize import curve_fit  # scipy: optional (the train extra)
    except ImportError:
        return None

    x, y = np.asarray(pred, np.float64), np.asarray(mos, np.float64)
    if len(x) < 5:
        return None
    spread = max(float(x.std()), 1e-6)
    best, best_sse = None, np.inf
    for slope in (0.25, 0.5, 1.0, 2.0):                     # a few starts; the fit has local minima
        p0 = [y.max(), y.min(), float(np.median(x)), slope * spread]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(logistic4, x, y, p0=p0, jac=_logistic4_jac, maxfev=20000)
        except (RuntimeError, ValueError, TypeError):
            continue
        sse = float(((logistic4(x, *params) - y) ** 2).sum())
        if np.isfinite(sse) and sse < best_sse:
            best, best_sse = params, sse
    return best


def plcc_logistic(pred: Sequence[float], mos: Sequence[float]) -> float | None:
    """PLCC between the logistic-mapped predictions and MOS (None without scipy or no fit)."""
    params = fit_logistic4(pred, mos)
    if params is None:
        return None
    return pearson(logistic4(np.asarray(pred, np.float64), *params), mos)


def correlation_report(pred: Sequence[float], mos: Sequence[float]) -> dict[str, float | None]:
    """``{"srcc", "plcc" (after the logistic fit), "plcc_raw", "krcc", "rmse_raw", "n"}``."""
    pred, mos = np.asarray(pred, np.float64), np.asarray(mos, np.float64)
    return {"srcc": srcc(pred, mos), "plcc": plcc_logistic(pred, mos), "plcc_raw": pearson(pred, mos),
            "krcc": kendall_tau(pred, mos), "rmse_raw": float(np.sqrt(np.mean((pred - mos) ** 2))),
            "n": int(len(pred))}
