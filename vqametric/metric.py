"""``VQAThinkerMetric``: a torchmetrics ``Metric`` that scores videos.

>>> import torch
>>> from vqametric import VQAThinkerMetric
>>> _ = torch.manual_seed(0)
>>> metric = VQAThinkerMetric()                        # the default model, vqametric-fast
>>> per_video = metric(torch.rand(2, 8, 3, 64, 96))    # (B, T, 3, H, W) float in [0, 1]
>>> per_video.shape, per_video.dtype
(torch.Size([2]), torch.float32)
>>> bool(1.0 <= metric.compute() <= 5.0)
True
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torchmetrics import Metric

from .backends import build_scorer
from .backends.head import FastHead
from .errors import VQAMetricError
from .io.clip import iter_videos
from .plotting import plot_metric
from .registry import DEFAULT_MODEL, ModelCard, get_card
from .result import QualityResult
from .sampling.plan import SamplingConfig

REASONING_DEFAULT_MODEL = "vqathinker-8b"


class VQAThinkerMetric(Metric):
    """No-reference video quality on a 1-5 mean-opinion scale (higher is better).

    Args:
        model: a registered model name (see :func:`vqametric.list_models`), a :class:`ModelCard`, or a
            path to a ``.onnx`` / ``.safetensors`` head.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); default CPU.
        runtime: ``"onnx"`` or ``"torch"``; default from the model card. ``as_loss`` forces torch.
        as_loss: ``forward`` returns a differentiable loss ``mean(score_max - score)`` (0 is best)
            instead of per-video scores, for training generators.
        sampling: overrides of the card's :class:`SamplingConfig` fields, e.g. ``{"num_segments": 16}``.
        head: an in-memory :class:`FastHead` to score with (training, tests).
        fps: frame rate assumed for in-memory frames (default 30).
        max_pixels: refuse frames above this many pixels (default about 36 megapixels; see
            :mod:`vqametric.io.limits`).
        mode: ``"reasoning"`` scores with a reasoning model (default ``"vqathinker-8b"`` when ``model``
            is left at its default), ``"fast"`` insists on a fast head; None follows the model card.
        checkpoint: reasoning models: a local checkpoint folder or a Hugging Face Hub id.
        dtype: reasoning models: ``torch.bfloat16`` (default on CUDA), ``torch.float16`` or ``torch.float32``.
        reasoning: further reasoning-model options (``num_samples``, ``scoring``, ``retries``,
            ``max_new_tokens``, ``batch_size``, ``load_in_8bit``, ``prompt`` ...; see docs/reasoning.md).

        **kwargs: keyword arguments of ``torchmetrics.Metric`` (``sync_on_compute``,
            ``dist_sync_on_step``, ``compute_on_cpu`` ...).

    Raises:
        ValueError: ``mode`` is not ``None``, ``"fast"`` or ``"reasoning"``, or does not match the
            model (e.g. ``mode="fast"`` with a reasoning model).
        ModelNotFound: ``model`` is neither a registered name nor a weights path.
        WeightsNotFound: the model's weights are missing (reasoning models: no ``checkpoint``
            and nothing in the local cache).
        BackendUnavailable: an optional dependency of the runtime is not installed.
        InvalidOption: ``device``, ``runtime``, ``dtype`` or a reasoning option is unusable.

    ``update(videos)`` accepts one video or a batch: a list of videos, or a ``(B, T, 3, H, W)``
    tensor (uint8, or float in [0, 1]). States: ``score_sum``, ``count`` (summed) and ``scores``
    (concatenated) sync under DDP. A failed ``update`` leaves the state exactly as it was.
    In reasoning mode a video whose answer could not be parsed is counted in ``parse_failures``
    and left out of the mean (its score in ``forward``'s output is NaN).
    ``higher_is_better`` follows the model card (``True`` for every shipped model);
    ``lower_better`` is its read-only negation.

    Example:
        >>> import torch
        >>> from vqametric import VQAThinkerMetric
        >>> _ = torch.manual_seed(0)
        >>> metric = VQAThinkerMetric("vqametric-fast")
        >>> metric.update([torch.rand(6, 3, 48, 64)])           # a list of (T, 3, H, W) videos
        >>> int(metric.count), metric.higher_is_better, metric.score_range
        (1, True, (1.0, 5.0))
        >>> score = metric.compute()
        >>> score.shape, score.dtype, bool(1.0 <= score <= 5.0)
        (torch.Size([]), torch.float32, True)
        >>> metric.reset()
        >>> int(metric.count)
        0

        As a loss for training a generator (``forward`` returns ``mean(5 - score)``, 0 is best).
        Not run as a doctest: a backward pass through the feature network takes several
        seconds per video on a CPU.

        >>> loss_fn = VQAThinkerMetric(as_loss=True, device="cuda")            # doctest: +SKIP
        >>> frames = torch.rand(1, 8, 3, 64, 96, device="cuda", requires_grad=True)  # doctest: +SKIP
        >>> loss = loss_fn(frames)                                              # doctest: +SKIP
        >>> loss.shape, bool(0.0 <= loss <= 4.0)                                # doctest: +SKIP
        (torch.Size([]), True)
        >>> loss.backward()                                                     # doctest: +SKIP
        >>> frames.grad.shape                                                   # doctest: +SKIP
        torch.Size([1, 8, 3, 64, 96])

        A reasoning model needs its checkpoint (several GB) and, in practice, a GPU:

        >>> metric = VQAThinkerMetric(mode="reasoning", checkpoint="path/or/hub-id", device="cuda")  # doctest: +SKIP
    """

    is_differentiable = True
    higher_is_better: bool | None = True    # the class default; each metric's follows its model card (__init__)
    full_state_update = False

    score_sum: torch.Tensor
    count: torch.Tensor
    scores: list

    def __init__(self, model: str | os.PathLike | ModelCard = DEFAULT_MODEL, device: str | torch.device | None = None,
                 runtime: str | None = None, as_loss: bool = False, sampling: dict[str, Any] | None = None,
                 head: FastHead | None = None, fps: float | None = None, mode: str | None = None,
                 checkpoint: str | os.PathLike | None = None, dtype: Any = None,
                 reasoning: dict[str, Any] | None = None, max_pixels: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if mode == "reasoning" and isinstance(model, str) and model == DEFAULT_MODEL:
            model = REASONING_DEFAULT_MODEL
        card = get_card(model)
        if mode not in (None, "fast", "reasoning"):
            raise ValueError(f"mode must be 'fast' or 'reasoning', got {mode!r}")
        if mode is not None and (card.backend == "lmm") != (mode == "reasoning"):
            kind = "a reasoning model" if card.backend == "lmm" else f"a {card.backend} model"
            raise ValueError(f"model {card.name!r} is {kind}; it cannot be used with mode={mode!r}")
        lmm_options = dict(reasoning or {})
        if checkpoint is not None:
            lmm_options["checkpoint"] = os.fspath(checkpoint)
        if dtype is not None:
            lmm_options["dtype"] = dtype
        if sampling:
            card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(), **sampling}))
        self.card = card
        self.as_loss = as_loss
        self.fps = fps
        self.max_pixels = max_pixels
        self.score_range = tuple(card.score_range)
        # torchmetrics' __setattr__ refuses to change higher_is_better (a constant of the metric): set it once, here
        torch.nn.Module.__setattr__(self, "higher_is_better", not card.lower_better)
        self.scorer = build_scorer(card, device=device, runtime=runtime, requires_grad=as_loss, head=head,
                                   **lmm_options)
        self.last_results: list[QualityResult] = []
        self._last_scores: torch.Tensor | None = None
        self.add_state("score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("parse_failures", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @property
    def model_name(self) -> str:
        """The model card's name, e.g. ``"vqametric-fast"``."""
        return self.card.name

    @property
    def lower_better(self) -> bool:
        """pyiqa's name for ``not higher_is_better``; read-only, it follows the model card."""
        return not self.higher_is_better

    def update(self, videos: Any) -> None:
        """Score ``videos`` and add them to the state. Nothing changes if any video fails.

        Args:
            videos: one video or a batch: a torch tensor ``(T, 3, H, W)`` (one video) or
                ``(B, T, 3, H, W)`` (a batch), ``uint8`` or floating point in [0, 1]; a numpy
                ``(T, H, W, 3)`` ``uint8`` array; a path, ``bytes`` or binary file object; or a
                list / tuple of any of those.

        Raises:
            InvalidVideoInput: a video is not one vqametric can score (wrong type, rank, dtype,
                value range, NaN/Inf, no frames).
            FrameTooLarge: a video's frames have more than ``max_pixels`` pixels.
            VideoDecodeError: a file or byte stream could not be decoded.

        Example:
            >>> import torch
            >>> from vqametric import VQAThinkerMetric
            >>> metric = VQAThinkerMetric()
            >>> metric.update(torch.rand(8, 3, 64, 96))             # one video
            >>> metric.update(torch.rand(8, 3, 64, 96) * 255)       # not in [0, 1]: refused
            Traceback (most recent call last):
            ...
            vqametric.errors.InvalidVideoInput: ...
            >>> int(metric.count)                                   # the failed update left no trace
            1
        """
        try:
            items = list(iter_videos(videos))
            scores, results = self.scorer.score(items, fps=self.fps, max_pixels=self.max_pixels)
        except BaseException:
            self._update_count -= 1  # torchmetrics counted the call before it ran
            raise
        detached = scores.detach()
        failed = ~torch.isfinite(detached)  # reasoning mode: unparsed answers are counted, not averaged
        if bool(failed.any()):
            self.parse_failures = self.parse_failures + int(failed.sum())
            detached = detached[~failed]
        self.score_sum = self.score_sum + detached.sum().to(self.score_sum)
        self.count = self.count + detached.numel()
        self.scores.append(detached.to(self.score_sum.device, torch.float32))
        self.last_results = results
        self._last_scores = scores

    def compute(self) -> torch.Tensor:
        """Mean score over every video seen since the last ``reset``.

        Returns:
            A 0-d ``torch.float32`` tensor in the card's ``score_range`` ([1, 5] for the shipped
            models). Videos whose reasoning answer could not be parsed are left out.

        Raises:
            VQAMetricError: no video has been scored since the last ``reset``.

        Example:
            >>> import torch
            >>> from vqametric import VQAThinkerMetric
            >>> metric = VQAThinkerMetric()
            >>> metric.update(torch.rand(8, 3, 64, 96))
            >>> value = metric.compute()
            >>> value.ndim, value.dtype, bool(1.0 <= value <= 5.0)
            (0, torch.float32, True)
        """
        if int(self.count) == 0:
            raise VQAMetricError("compute() was called before any successful update(); score some videos first")
        return (self.score_sum / self.count).float()

    def forward(self, videos: Any) -> torch.Tensor:
        """Score a batch and add it to the state (as :meth:`update`).

        Gradients flow to the input frames when the metric was made with ``as_loss=True`` (or
        its runtime is ``"torch"`` and the input requires grad).

        Args:
            videos: as :meth:`update`: one video, a list of videos, or a ``(B, T, 3, H, W)``
                tensor (``uint8``, or floating point in [0, 1]).

        Returns:
            The per-video scores, a ``torch.float32`` tensor of shape ``(B,)`` (``(1,)`` for one
            video) with values in [1, 5] (NaN for an unparsed reasoning answer); with
            ``as_loss=True`` the 0-d loss ``mean(score_range[1] - scores)`` in [0, 4] instead.

        Raises:
            The errors of :meth:`update`.

        Example:
            >>> import torch
            >>> from vqametric import VQAThinkerMetric
            >>> metric = VQAThinkerMetric()
            >>> scores = metric(torch.rand(1, 8, 3, 64, 96))
            >>> scores.shape, bool(((scores >= 1) & (scores <= 5)).all())
            (torch.Size([1]), True)
        """
        self._enable_grad = True
        try:
            self.update(videos)
        finally:
            self._enable_grad = False
        scores = self._last_scores
        if self.as_loss:
            return (self.score_range[1] - scores).mean()
        return scores

    def results(self) -> list[QualityResult]:
        """Full results (timeline, attribution, timings) of the last ``update``/``forward``.

        Returns:
            A new ``list`` of :class:`~vqametric.result.QualityResult`, one per video of the last
            successful call, in input order (empty before the first).

        Example:
            >>> import torch
            >>> from vqametric import VQAThinkerMetric
            >>> metric = VQAThinkerMetric()
            >>> metric.update(torch.rand(8, 3, 64, 96))
            >>> [r.model for r in metric.results()]
            ['vqametric-fast']
        """
        return list(self.last_results)

    def plot(self, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
        """Plot metric values as torchmetrics' ``Metric.plot`` does, bounded by the card's score range.

        Args:
            val: a ``forward`` or ``compute`` output (a tensor), or a list of them; by default
                every per-video score since the last ``reset`` (one point per video).
            ax: a matplotlib ``Axes`` to draw on; by default a new figure.

        Returns:
            ``(figure, axes)``: the matplotlib ``Figure`` and the ``Axes`` drawn on. The figure
            is not shown.

        Raises:
            VQAMetricError: ``val`` is None and no video has been scored since the last ``reset``.
            BackendUnavailable: matplotlib is not installed (``pip install 'vqametric[plot]'``).

        Example:
            >>> import torch
            >>> from vqametric import VQAThinkerMetric
            >>> metric = VQAThinkerMetric()
            >>> metric.update(torch.rand(8, 3, 64, 96))
            >>> fig, ax = metric.plot()
            >>> ax.get_xlabel()
            'video'
        """
        return plot_metric(self, val, ax)


#: reasoning-model options ``create_metric`` accepts directly (they go into ``reasoning=``)
REASONING_OPTIONS = ("max_new_tokens", "num_samples", "temperature", "top_p", "top_k", "retries", "retry_temperature",
                     "scoring", "seed", "batch_size", "load_in_8bit", "prompt", "attn_implementation")


def create_metric(name: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device | None = None,
                  as_loss: bool = False, **kwargs: Any) -> VQAThinkerMetric:
    """pyiqa-style factory: ``create_metric("vqametric-fast", device="cuda")`` or
    ``create_metric("vqathinker-8b", checkpoint=PATH_OR_HUB_ID, device="cuda", num_samples=4)``.

    Args:
        name: a registered model name (see :func:`~vqametric.registry.list_models`) or a path to
            a ``.onnx`` / ``.safetensors`` head; default ``"vqametric-fast"``.
        device: where the model runs (``"cpu"``, the default, ``"cuda"``, ``"cuda:N"``).
        as_loss: ``forward`` returns the differentiable loss ``mean(score_max - score)``.
        **kwargs: the other arguments of :class:`VQAThinkerMetric` (``runtime``, ``sampling``,
            ``fps``, ``mode``, ``checkpoint``, ``dtype`` ...); the reasoning options in
            ``REASONING_OPTIONS`` (``num_samples``, ``max_new_tokens`` ...) may be given directly
            and are passed on in ``reasoning=``.

    Returns:
        A new :class:`VQAThinkerMetric`.

    Raises:
        The errors of :class:`VQAThinkerMetric` (e.g. :class:`~vqametric.errors.ModelNotFound`).

    Example:
        >>> import torch, vqametric
        >>> metric = vqametric.create_metric("vqametric-fast")
        >>> metric.model_name, metric.lower_better
        ('vqametric-fast', False)
        >>> vqametric.create_metric("vqametric-fats")
        Traceback (most recent call last):
        ...
        vqametric.errors.ModelNotFound: no model named 'vqametric-fats'; did you mean vqametric-fast...

        A reasoning model needs its checkpoint (several GB), so this is not run here:

        >>> reasoner = vqametric.create_metric("vqathinker-8b", checkpoint="hub-id",
        ...                                    num_samples=4)  # doctest: +SKIP
    """
    reasoning = dict(kwargs.pop("reasoning", None) or {})
    reasoning.update({k: kwargs.pop(k) for k in list(kwargs) if k in REASONING_OPTIONS})
    if reasoning:
        kwargs["reasoning"] = reasoning
    return VQAThinkerMetric(model=name, device=device, as_loss=as_loss, **kwargs)
