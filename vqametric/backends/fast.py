"""The fast scoring path: clip -> plan -> decode -> preprocess -> head -> :class:`QualityResult`.

A batch is scored clip by clip, and a clip's segments go through the head ``HEAD_CHUNK`` at a time,
so memory does not grow with the batch.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Any, Sequence

import torch

from ..errors import BackendUnavailable, InvalidOption, InvalidVideoInput, SamplingError, parse_device
from ..forksafety import mark_used
from ..registry import ModelCard
from ..result import QualityResult, SegmentScore
from ..sampling import preprocess
from .head import HeadConfig, head_vocabulary, load_head
from .planned import read_planned
from .gradient_graph import for_gradients, run_head
from .pooling import pool_outputs, pooled_class_indices

HEAD_CHUNK = 16  # segments per head call: one default-sampled clip of up to 16 s


class FastScorer:
    """Scores clips with a fast head.

    ``runtime``: ``"onnx"`` (onnxruntime; default where the card has ONNX weights) or ``"torch"``
    (needed for gradients: ``requires_grad=True`` forces it). ``head``: score with this in-memory
    :class:`FastHead` instead of the card's weights (training, tests). ``overlap``: preprocess
    frames while later ones decode (default); ``False`` decodes first (one thread fewer, e.g.
    when many scoring processes already share the cores), with the same scores.
    """

    def __init__(self, card: ModelCard, device: str | torch.device | None = None, runtime: str | None = None,
                 requires_grad: bool = False, head: FastHead | None = None, overlap: bool = True):
        self.card = card
        self.overlap = overlap
        self.device = parse_device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"device={str(self.device)!r} but torch sees no CUDA device (torch "
                                     f"{torch.__version__}); use device='cpu' or install a CUDA build of torch")
        self.requires_grad = requires_grad
        if head is not None:
            runtime = "torch"
        elif requires_grad:
            if runtime == "onnx":
                raise InvalidOption("gradients need runtime='torch'; ONNX Runtime is inference-only")
            runtime = "torch"
        runtime = runtime or card.default_runtime
        if runtime not in ("onnx", "torch"):
            raise InvalidOption(f"runtime must be 'onnx' or 'torch', got {runtime!r}")
        self.runtime = runtime
        if head is not None:
            self.model = head.to(self.device)
        elif runtime == "onnx":
            from .onnx_runtime import OnnxHead  # optional: onnxruntime (the onnx extra)
            self.model = OnnxHead(card.weights_path("onnx"), self.device)
        else:
            self.model, _ = load_head(card.weights_path("torch"), self.device)
            for p in self.model.parameters():
                p.requires_grad_(False)
            if requires_grad:  # gradients into pixels: batch norms folded, channels-last (gradient_graph)
                self.model = for_gradients(self.model)
        self._pid = os.getpid()
        self.head_config = self._head_config()
        _, self.distortions, self.attribution_classes = head_vocabulary(self.head_config.arch)
        self._pool_classes = pooled_class_indices(self.attribution_classes)
        self._check_sampling()

    def _head_config(self) -> HeadConfig:
        if hasattr(self.model, "config"):
            return self.model.config
        return HeadConfig.from_dict(self.model.metadata["head"])

    def _check_sampling(self) -> None:
        s = self.card.sampling
        c = self.head_config
        if (s.fragment_grid * s.fragment_patch, s.global_size, s.frames_per_segment) != \
                (c.fragment_size, c.global_size, c.frames_per_segment):
            raise SamplingError(
                f"model {self.card.name!r}: sampling gives fragments {s.fragment_grid * s.fragment_patch}px, "
                f"global view {s.global_size}px, {s.frames_per_segment} frame(s) per segment, but the head "
                f"expects {c.fragment_size}, {c.global_size}, {c.frames_per_segment}; set the sampling to match the head")

    # ------------------------------------------------------------------------------------------
    def prepare(self, video: Any, fps: float | None = None,
                max_pixels: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Open, plan, decode and preprocess one video -> (views, context for the result).

        Each frame is preprocessed as soon as it is decoded, while later frames still decode, and
        released then (:func:`~vqametric.backends.planned.read_planned` with ``chunk=1`` and
        ``keep_frames=False``): memory holds a few frames at a time. ``max_pixels``: see
        :mod:`vqametric.io.limits`."""
        # preprocessing is per frame: frames are handed over one by one, the least left after decoding
        read = read_planned(video, self.card.sampling, fps, chunk_fn=self._views, overlap=self.overlap, chunk=1,
                            keep_frames=False, max_pixels=max_pixels)
        views = {k: torch.cat([o[k] for o in read.chunk_outputs]) for k in read.chunk_outputs[0]}
        _sync(self.device)
        ctx = {"info": read.info, "plan": read.plan, "timings": dict(read.timings)}
        return views, ctx

    def _views(self, plan, chunk: int, frames) -> dict[str, torch.Tensor]:
        if self.device.type == "cuda" and frames.device.type != "cuda":
            frames = frames.to(self.device)  # decoded planes are small: convert them on the GPU (kernels)
        views = {k: v.to(self.device) for k, v in preprocess(frames, plan, device=frames.device).items()}
        _sync(self.device)  # so that the stage timings hold the GPU work too
        return views

    def forward(self, views: Sequence[dict[str, torch.Tensor]], k: int) -> dict[str, torch.Tensor]:
        """Head outputs for the concatenated segments of several clips, ``HEAD_CHUNK`` segments per
        head call (outputs are per segment, so chunking changes nothing but the peak memory)."""
        frag = torch.cat([v["fragments"] for v in views])
        glob = torch.cat([v["global_view"] for v in views])
        frag = frag.view(-1, k, *frag.shape[1:])
        glob = glob.view(-1, k, *glob.shape[1:])
        grad = self.runtime == "torch" and self.requires_grad and torch.is_grad_enabled()
        parts = []
        with torch.set_grad_enabled(grad):
            for a in range(0, frag.shape[0], HEAD_CHUNK):
                parts.append(run_head(self.model, frag[a:a + HEAD_CHUNK], glob[a:a + HEAD_CHUNK]))
        if len(parts) == 1:
            return parts[0]
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    def score(self, videos: Sequence[Any], fps: float | None = None,
              max_pixels: int | None = None) -> tuple[torch.Tensor, list[QualityResult]]:
        """Score several videos: ``(scores (B,) float32 tensor, results)``; scores keep autograd.

        Clips are scored one after another (decode, preprocess, head, pooling), so peak memory is
        that of the largest clip, not of the batch."""
        if len(videos) == 0:
            raise InvalidVideoInput("the batch is empty; pass at least one video")
        mark_used()
        if self._pid != os.getpid():
            self._after_fork()
        scores, results = [], []
        for video in videos:
            score, result = self._score_one(video, fps, max_pixels)
            scores.append(score)
            results.append(result)
        return torch.stack(scores).float(), results

    def _after_fork(self) -> None:
        """In a process forked from the one that built this scorer: ONNX Runtime's worker threads
        stayed in the parent, so the session is opened again here (see :mod:`vqametric.forksafety`)."""
        if self.runtime == "onnx" and hasattr(self.model, "path"):
            from .onnx_runtime import OnnxHead  # optional: onnxruntime (the onnx extra)
            self.model = OnnxHead(self.model.path, self.device)
        self._pid = os.getpid()

    def _score_one(self, video: Any, fps: float | None, max_pixels: int | None) -> tuple[torch.Tensor, QualityResult]:
        with warnings.catch_warnings(record=True) as caught:  # decode problems become part of the result
            warnings.simplefilter("always")
            views, ctx = self.prepare(video, fps, max_pixels)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # still issued, as before
        ctx["warnings"] = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        t0 = time.perf_counter()
        out = self.forward([views], self.card.sampling.frames_per_segment)
        _sync(self.device)
        infer = time.perf_counter() - t0
        pooled = pool_outputs(out, self._pool_classes)
        if not bool(torch.isfinite(pooled.score.detach())):
            raise InvalidVideoInput(f"the model produced a non-finite score for {ctx['info'].source}; "
                                    "the input frames are probably corrupt")
        return pooled.score, self._result(ctx, pooled, infer)

    def _result(self, ctx, pooled, infer_time) -> QualityResult:
        plan, info = ctx["plan"], ctx["info"]
        seg_scores = pooled.segment_scores.detach().float().cpu()
        top = pooled.segment_classes.tolist()
        timeline = [SegmentScore(s.start_frame, s.end_frame, round(s.start_time, 4), round(s.end_time, 4),
                                 float(x), self.attribution_classes[c], bool(f))
                    for s, x, c, f in zip(plan.segments, seg_scores.tolist(), top, pooled.frozen.tolist())]
        timings = dict(ctx["timings"], inference=infer_time)
        timings["total"] = sum(timings.values())
        return QualityResult(
            score=float(pooled.score.detach()), model=self.card.name, model_version=self.card.version,
            source=info.source, timeline=timeline,
            attribution={d: round(float(v), 4) for d, v in zip(self.distortions, pooled.severity.cpu().tolist())},
            dominant_distortion=self.attribution_classes[pooled.dominant],
            sampling=plan.describe(), clip=info.to_dict(), timings={k: round(v, 6) for k, v in timings.items()},
            warnings=ctx.get("warnings", []))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
