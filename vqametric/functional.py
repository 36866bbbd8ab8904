"""Functional API: score videos without managing metric state.

>>> import torch, vqametric
>>> clip = torch.rand(16, 3, 240, 320)                    # (T, 3, H, W) float in [0, 1]
>>> result = vqametric.score(clip, model="my_head.onnx")  # doctest: +SKIP
>>> 1.0 <= result.score <= 5.0                            # doctest: +SKIP
True
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import torch

from .backends import build_scorer
from .errors import InvalidOption
from .io.clip import iter_videos
from .registry import DEFAULT_MODEL, ModelCard, get_card, list_models
from .sampling.overrides import frozen, sampled_card
from .result import QualityResult


class _ScorerCache:
    """Least-recently-used scorers, rebuilt when what they were built from changed: the registered
    card (``register_model(..., overwrite=True)``) or the weights file (rewritten in place)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()

    @staticmethod
    def fingerprint(model: str) -> Any:
        if model in list_models():
            card = get_card(model)
            return card, tuple(_stamp(card.weights_path(rt)) for rt in card.available_runtimes())
        return _stamp(model)

    def get(self, key: tuple, build) -> Any:
        fp = self.fingerprint(key[0])
        hit = self.items.get(key)
        if hit is not None and hit[0] == fp:
            self.items.move_to_end(key)
            return hit[1]
        scorer = build()
        self.items[key] = (fp, scorer)
        self.items.move_to_end(key)
        while len(self.items) > self.maxsize:
            self.items.popitem(last=False)
        return scorer


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


_FAST_SCORERS = _ScorerCache(8)
_LMM_SCORERS = _ScorerCache(2)  # reasoning models are large: keep few


def _results(scorer, video: Any, fps: float | None,
             max_pixels: int | None = None) -> QualityResult | list[QualityResult]:
    """Score one video (-> a result) or a batch: a list/tuple or ``(B, T, 3, H, W)`` tensor (-> a list)."""
    batch = isinstance(video, (list, tuple)) or (isinstance(video, torch.Tensor) and video.ndim == 5)
    _, results = scorer.score(list(iter_videos(video)), fps=fps, max_pixels=max_pixels)
    return results if batch else results[0]


def get_scorer(model: str | os.PathLike | ModelCard = DEFAULT_MODEL, device: str | None = None,
               runtime: str | None = None, sampling: dict[str, Any] | None = None):
    """A (cached) scorer for ``model``: a registered name, a card, or a head weights path.
    ``sampling``: overrides of the card's sampling fields (e.g. ``{"num_segments": 8}``)."""
    if isinstance(model, ModelCard):
        return build_scorer(sampled_card(model, sampling), device=device, runtime=runtime)
    name, dev = os.fspath(model), None if device is None else str(device)
    return _FAST_SCORERS.get((name, dev, runtime, frozen(sampling)),
                             lambda: build_scorer(get_card(sampled_card(name, sampling)), device=dev, runtime=runtime))


def score(video: Any, model: str | os.PathLike | ModelCard = DEFAULT_MODEL, device: str | None = None,
          runtime: str | None = None, fps: float | None = None, max_pixels: int | None = None,
          sampling: dict[str, Any] | None = None) -> QualityResult | list[QualityResult]:
    """Quality of one video, or of each video of a batch.

    ``video``: a path, bytes, a binary file object, numpy ``(T, H, W, 3)`` uint8, torch
    ``(T, 3, H, W)`` uint8 or float in [0, 1], ``YUV420Frames``, or a list / ``(B, T, 3, H, W)``
    batch of those (then a list of results is returned). ``fps`` sets the frame rate of in-memory
    frames (default 30). ``max_pixels``: refuse larger frames with
    :class:`~vqametric.errors.FrameTooLarge` (default about 36 megapixels, 8K fits; see
    :mod:`vqametric.io.limits`). ``sampling``: overrides of the model's sampling, e.g.
    ``{"num_segments": 8, "frames_per_segment": 4}`` (a fixed number of segments), or any
    :class:`~vqametric.sampling.SamplingConfig` field. Returns :class:`QualityResult` with
    ``score`` on the 1-5 scale.
    """
    scorer = get_scorer(model, device, runtime, sampling)
    return _results(scorer, video, fps, max_pixels)


def score_batch(videos: Any, **kwargs: Any) -> list[QualityResult]:
    """Like :func:`score` but always returns a list."""
    out = score(list(iter_videos(videos)), **kwargs)
    return out if isinstance(out, list) else [out]


def explain(video: Any, model: str | ModelCard = "vqathinker-8b", checkpoint: str | os.PathLike | None = None,
            device: str | None = None, dtype: Any = None, fps: float | None = None,
            **options: Any) -> QualityResult | list[QualityResult]:
    """Quality of one video (or each video of a batch) with a reasoning model's explanation.

    ``checkpoint``: a local folder or a Hugging Face Hub id (downloaded on first use); without it
    the model card's Hub id is used only if already in the local cache. ``options``: reasoning
    options such as ``num_samples``, ``scoring="expected"``, ``retries``, ``max_new_tokens``,
    ``load_in_8bit``, ``prompt="dimensions"`` (see docs/reasoning.md). The result has ``score``
    (1-5), ``text`` (the reasoning), ``raw_answer`` (the full response), ``dimensions`` and
    ``parse_ok``; the loaded model is cached for the next call.
    """
    if checkpoint is not None:
        options["checkpoint"] = os.fspath(checkpoint)
    if dtype is not None:
        options["dtype"] = str(dtype).replace("torch.", "")
    if isinstance(model, ModelCard):
        scorer = build_scorer(model, device=device, **options)
    else:
        if get_card(model).backend != "lmm":
            raise InvalidOption(f"explain() needs a reasoning model; {model!r} is a {get_card(model).backend} model "
                             "(use vqametric.score)")
        key = tuple(sorted((k, v if not isinstance(v, (list, dict)) else repr(v)) for k, v in options.items()))
        name, dev = os.fspath(model), None if device is None else str(device)
        scorer = _LMM_SCORERS.get((name, dev, key), lambda: build_scorer(get_card(name), device=dev, **options))
    return _results(scorer, video, fps)
