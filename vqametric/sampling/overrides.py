"""Sampling overrides: a model card whose :class:`~vqametric.sampling.SamplingConfig` is changed
by a few fields (``vqametric.score(..., sampling={...})``, ``vqametric score --segments N``)."""
from __future__ import annotations

import os
from typing import Any

from ..registry import ModelCard, get_card
from .plan import SamplingConfig


def sampled_card(model: str | os.PathLike | ModelCard, sampling: dict[str, Any] | None) -> Any:
    """``model`` with its sampling overridden by ``sampling`` (``num_segments``,
    ``frames_per_segment``, any :class:`~vqametric.sampling.SamplingConfig` field); ``model`` itself
    when there is nothing to override. ``num_segments`` alone fixes the number of segments (it turns
    off the duration-based count of ``segment_seconds``)."""
    if not sampling:
        return model if isinstance(model, ModelCard) else os.fspath(model)
    card = get_card(model)
    merged = {**card.sampling.to_dict(), **sampling}
    if "num_segments" in sampling:
        if "segment_seconds" not in sampling:
            merged["segment_seconds"] = 0.0
        merged["max_segments"] = max(int(merged["max_segments"]), int(merged["num_segments"]))
    return get_card(card, sampling=SamplingConfig.from_dict(merged))


def frozen(sampling: dict[str, Any] | None) -> tuple | None:
    """``sampling`` as a hashable key (lists become tuples); ``None`` when empty."""
    if not sampling:
        return None
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in sampling.items()))
