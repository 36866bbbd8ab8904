"""Functional API: score videos without managing metric state.

>>> import torch, vqametric
>>> _ = torch.manual_seed(0)
>>> clip = torch.rand(8, 3, 64, 96)          # (T, 3, H, W) float in [0, 1]
>>> result = vqametric.score(clip)           # the default model, vqametric-fast
>>> 1.0 <= result.score <= 5.0
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

    Args:
        video: one video or a batch of videos. One video is a path (``str`` / ``os.PathLike``),
            ``bytes``, a binary file object, a numpy array ``(T, H, W, 3)`` of ``uint8``, a torch
            tensor ``(T, 3, H, W)`` of ``uint8`` or floating point in [0, 1], a
            :class:`~vqametric.io.YUV420Frames`, or a :class:`~vqametric.io.Clip`. A batch is a
            ``list`` / ``tuple`` of those, or a torch tensor ``(B, T, 3, H, W)``.
        model: a registered model name (see :func:`list_models`; default ``"vqametric-fast"``),
            a :class:`~vqametric.registry.ModelCard`, or a path to a ``.onnx`` / ``.safetensors``
            head. Scorers are cached, so repeated calls do not reload the weights.
        device: where the model runs: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or a
            ``torch.device``.
        runtime: ``"onnx"`` or ``"torch"``; default from the model card.
        fps: frame rate of in-memory frames, in frames per second (> 0; default 30). Files use
            their own frame rate.
        max_pixels: largest frame accepted, in pixels per frame (default about 36 megapixels,
            8K fits; see :mod:`vqametric.io.limits`).
        sampling: overrides of the model's sampling, e.g. ``{"num_segments": 8,
            "frames_per_segment": 4}`` (a fixed number of segments), or any
            :class:`~vqametric.sampling.SamplingConfig` field.

    Returns:
        One :class:`QualityResult` for one video, or a ``list`` of them (in input order) for a
        batch. ``score`` is a Python ``float`` on the 1-5 mean-opinion scale (higher is better);
        ``timeline`` holds one :class:`~vqametric.result.SegmentScore` per segment and
        ``attribution`` one severity in [0, 1] per distortion.

    Raises:
        InvalidVideoInput: the input is not a video (wrong type, rank, dtype, value range,
            NaN/Inf, no frames).
        FrameTooLarge: the frames have more than ``max_pixels`` pixels (nothing is decoded).
        VideoDecodeError: a file or byte stream could not be opened or decoded.
        ModelNotFound: ``model`` is neither a registered name nor a weights path.
        WeightsNotFound: the model's weights file is missing.
        BackendUnavailable: an optional dependency of the runtime (e.g. onnxruntime) is missing.
        InvalidOption: ``device``, ``runtime`` or another option has a value that cannot be used.
        SamplingError: ``sampling`` cannot be applied to the clip.

    Example:
        >>> import numpy as np, torch, vqametric
        >>> _ = torch.manual_seed(0)
        >>> r = vqametric.score(torch.rand(8, 3, 64, 96))
        >>> r.model, 1.0 <= r.score <= 5.0, len(r.timeline) > 0
        ('vqametric-fast', True, True)
        >>> frames = np.random.default_rng(0).integers(0, 256, (8, 64, 96, 3), dtype=np.uint8)
        >>> isinstance(vqametric.score(frames).score, float)
        True
        >>> batch = vqametric.score([torch.rand(8, 3, 64, 96), torch.rand(6, 3, 48, 64)])
        >>> [1.0 <= x.score <= 5.0 for x in batch]
        [True, True]
        >>> vqametric.score(torch.rand(8, 3, 64, 96) * 255)
        Traceback (most recent call last):
        ...
        vqametric.errors.InvalidVideoInput: tensor of shape (8, 3, 64, 96) has values in [...], outside ...
    """
    scorer = get_scorer(model, device, runtime, sampling)
    return _results(scorer, video, fps, max_pixels)


def score_batch(videos: Any, **kwargs: Any) -> list[QualityResult]:
    """Like :func:`score`, but always returns a list (one result per video, even for one video).

    Args:
        videos: one video or a batch, in any form :func:`score` accepts: a list / tuple of videos,
            a ``(B, T, 3, H, W)`` tensor (``uint8``, or floating point in [0, 1]), or a single video.
        **kwargs: the keyword arguments of :func:`score` (``model``, ``device``, ``runtime``,
            ``fps``, ``max_pixels``, ``sampling``).

    Returns:
        A ``list`` of :class:`QualityResult`, one per video in input order, each ``score`` a
        ``float`` in [1, 5].

    Raises:
        The errors of :func:`score` (e.g. :class:`~vqametric.errors.InvalidVideoInput`).

    Example:
        >>> import torch, vqametric
        >>> _ = torch.manual_seed(0)
        >>> results = vqametric.score_batch(torch.rand(8, 3, 64, 96))   # one video: still a list
        >>> len(results), 1.0 <= results[0].score <= 5.0
        (1, True)
    """
    out = score(list(iter_videos(videos)), **kwargs)
    return out if isinstance(out, list) else [out]


def explain(video: Any, model: str | ModelCard = "vqathinker-8b", checkpoint: str | os.PathLike | None = None,
            device: str | None = None, dtype: Any = None, fps: float | None = None,
            **options: Any) -> QualityResult | list[QualityResult]:
    """Quality of one video (or each video of a batch) with a reasoning model's explanation.

    Args:
        video: one video or a batch, in any form :func:`score` accepts (path, bytes, file object,
            numpy ``(T, H, W, 3)`` ``uint8``, torch ``(T, 3, H, W)`` ``uint8`` or float in [0, 1],
            or a list / ``(B, T, 3, H, W)`` batch).
        model: a reasoning model's name (``backend == "lmm"``, e.g. ``"vqathinker-8b"``, the
            default; see ``list_models(backend="lmm")``) or its :class:`~vqametric.registry.ModelCard`.
        checkpoint: a local checkpoint folder or a Hugging Face Hub id (downloaded on first use);
            without it the model card's Hub id is used only if already in the local cache.
        device: where the model runs (``"cuda"``, ``"cuda:N"``, ``"cpu"``).
        dtype: ``torch.bfloat16`` (default on CUDA), ``torch.float16`` or ``torch.float32``
            (or the same names as strings).
        fps: frame rate of in-memory frames (> 0; default 30).
        **options: reasoning options such as ``num_samples``, ``scoring="expected"``,
            ``retries``, ``max_new_tokens``, ``load_in_8bit``, ``prompt="dimensions"`` (see
            docs/reasoning.md).

    Returns:
        One :class:`QualityResult` (or a ``list`` for a batch) with ``score`` (``float`` in
        [1, 5], NaN when the answer could not be parsed), ``text`` (the reasoning),
        ``raw_answer`` (the full response), ``dimensions`` (name -> 1-5 score) and ``parse_ok``.
        The loaded model is cached for the next call.

    Raises:
        InvalidOption: ``model`` is not a reasoning model, or an option has an unusable value.
        ModelNotFound: no model is registered under ``model``.
        WeightsNotFound: no ``checkpoint`` was given and the model is not in the local cache.
        BackendUnavailable: ``transformers`` (or another optional dependency) is not installed.
        InvalidVideoInput: the input is not a video (see :func:`score`).

    Example:
        >>> import torch, vqametric
        >>> vqametric.explain(torch.rand(8, 3, 64, 96), model="vqametric-fast")
        Traceback (most recent call last):
        ...
        vqametric.errors.InvalidOption: explain() needs a reasoning model; 'vqametric-fast' is a fast-head model ...

        A reasoning model needs its checkpoint (several GB) and, in practice, a GPU:

        >>> r = vqametric.explain("clip.mp4", checkpoint="path/or/hub-id", device="cuda")  # doctest: +SKIP
        >>> r.score, r.text  # doctest: +SKIP
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
