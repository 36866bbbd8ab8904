"""``LMMScorer``: reasoning-mode scoring with the same interface as the fast scorer.

``score(videos, fps) -> (scores, results)``: every clip is opened, sampled with the card's
sampling plan and turned into the family's visual input; clips are then generated for in
batches (one left-padded ``generate`` call per ``batch_size`` clips, ``num_samples`` answers per
clip) and each answer is parsed.

Scores that can be trusted:

* the score is the first number inside ``<answer>``, clamped to 1-5 (``scoring="expected"``
  replaces its leading digit by the probability-weighted mean of the level tokens 1-5);
* with several samples, the mean over the answers that parsed;
* a clip none of whose answers parsed (after ``retries`` extra sampled attempts) gets
  ``parse_ok=False`` in its result and NaN in the returned scores tensor; it is counted in
  ``stats["parse_failures"]`` and :class:`~vqametric.VQAThinkerMetric` leaves it out of its mean.
  Its ``QualityResult.score`` is NaN too: no stand-in value.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import time
from typing import Any, Sequence

import torch

from ...errors import BackendUnavailable, InvalidOption, InvalidVideoInput, WeightsNotFound
from ...registry import ModelCard
from ...result import QualityResult
from ..planned import read_planned
from .base import Adapter, PreparedClip, resolve_device, resolve_dtype
from .dimensions import DimensionsTask
from .generation import GenerationOptions, generate
from .memory import ModelTooLarge, available_bytes
from .qwen_vl import Qwen25VLAdapter, Qwen3VLAdapter
from .tasks import Answer, OverallTask
from .vqathinker import VQAThinkerAdapter
from .weights import detect_family, read_config, resolve_checkpoint

FAMILIES = ("vqathinker", "qwen2.5-vl", "qwen3-vl")


def adapter_class(family: str):
    if family == "vqathinker":
        return VQAThinkerAdapter
    if family == "qwen2.5-vl":
        return Qwen25VLAdapter
    if family == "qwen3-vl":
        return Qwen3VLAdapter
    raise InvalidOption(f"unknown reasoning-model family {family!r}; known: {', '.join(FAMILIES)}")


def _family_settings(family: str) -> dict[str, Any]:
    # R1-style Qwen checkpoints were trained with "Video 1: " ids and the "only one score" wording
    return {"vision_id": True} if family.startswith("qwen") else {}


class LMMScorer:
    """Scores clips with a reasoning model (see module docstring).

    ``checkpoint``: a local folder or a Hub id (default: the card's Hub id, used only when already
    cached). ``runtime``: the adapter family (``"vqathinker"``, ``"qwen2.5-vl"``, ``"qwen3-vl"``);
    default from the card, detected from ``config.json`` for ``"auto"``. ``dtype``: default
    bfloat16 on CUDA, float32 on CPU. ``load_in_8bit``: int8 language model (CUDA +
    bitsandbytes). ``prompt``: ``"overall"`` or ``"dimensions"`` (default: dimensions when the card
    names dimensions). Remaining keyword arguments are :class:`GenerationOptions` fields.
    ``adapter``: an already built adapter (tests, custom families).
    """

    def __init__(self, card: ModelCard, device: str | torch.device | None = None, runtime: str | None = None,
                 requires_grad: bool = False, head: Any = None, *, checkpoint: str | None = None,
                 dtype: str | torch.dtype | None = None, load_in_8bit: bool = False, prompt: str | None = None,
                 attn_implementation: str | None = None, adapter: Adapter | None = None,
                 options: GenerationOptions | None = None, **generation: Any):
        if requires_grad:
            raise InvalidOption(f"model {card.name!r} generates text; it has no gradients (as_loss needs a fast head)")
        if head is not None:
            raise InvalidOption("head= applies to fast-head models only")
        self.card = card
        self.options = options or GenerationOptions()
        if generation:
            known = {f.name for f in dataclasses.fields(GenerationOptions)}
            unknown = sorted(set(generation) - known)
            if unknown:
                raise TypeError(f"unknown reasoning option(s) {unknown}; known: {sorted(known)} and checkpoint, "
                                "dtype, load_in_8bit, prompt, attn_implementation")
            self.options = dataclasses.replace(self.options, **generation)
        kind = prompt or ("dimensions" if card.dimensions else "overall")
        if kind == "dimensions":
            self.task = DimensionsTask(card.dimensions) if card.dimensions else DimensionsTask()
        elif kind == "overall":
            self.task = OverallTask()
        else:
            raise InvalidOption(f"prompt must be 'overall' or 'dimensions', got {prompt!r}")
        if adapter is None:
            adapter = self._build_adapter(checkpoint, runtime, device, dtype, load_in_8bit, attn_implementation)
        self.adapter = adapter
        self.device = adapter.device
        self.runtime = adapter.family
        self.question = self.task.question(one_score=adapter.one_score_prompt)
        self.stats = {"clips": 0, "parse_failures": 0, "answers": 0, "answer_failures": 0, "retries": 0}

    def _build_adapter(self, checkpoint, runtime, device, dtype, load_in_8bit, attn_implementation) -> Adapter:
        if any(importlib.util.find_spec(m) is None for m in ("transformers", "accelerate")):
            raise BackendUnavailable("reasoning models need transformers and accelerate: pip install 'vqametric[lmm]'")
        card = self.card
        if checkpoint is None:
            checkpoint = card.weights.get("checkpoint")
        folder = resolve_checkpoint(checkpoint, card.weights.get("hub"), card.name)
        config = read_config(folder)
        detected = detect_family(config)
        family = runtime or card.default_runtime
        if family in (None, "", "auto"):
            family = detected
        if family not in FAMILIES:
            raise ValueError(f"runtime must be one of {', '.join(FAMILIES)} for reasoning models, got {family!r}")
        if family != detected:
            raise WeightsNotFound(f"model {card.name!r} expects a {family} checkpoint but {folder} holds a {detected} "
                                  "model; pass the right checkpoint, or runtime='auto'")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        cls = adapter_class(family)
        return cls(folder, config, sampling=card.sampling, device=dev, dtype=dt, load_in_8bit=load_in_8bit,
                   attn_implementation=attn_implementation, **_family_settings(family))

    # ------------------------------------------------------------------------------------------
    def prepare(self, video: Any, fps: float | None = None,
                max_pixels: int | None = None) -> tuple[PreparedClip, dict[str, Any]]:
        """Open, plan, decode and turn one video into the family's inputs."""
        read = read_planned(video, self.card.sampling, fps, max_pixels=max_pixels)
        t2 = time.perf_counter()
        info, plan = read.info, read.plan
        frames = read.planned()
        prepared = self.adapter.prepare(frames, plan, info)
        _sync(self.device)
        t3 = time.perf_counter()
        ctx = {"info": info, "plan": plan, "timings": dict(read.timings, preprocess=t3 - t2)}
        return prepared, ctx

    def _generate(self, clips: Sequence[PreparedClip], n: int, do_sample: bool, temperature: float | None,
                  seed: int | None) -> list[list[Answer]]:
        """``n`` answers for each clip, in sub-batches of ``batch_size`` clips."""
        out: list[list[Answer]] = []
        step = max(1, self.options.batch_size)
        for start in range(0, len(clips), step):
            chunk = list(clips[start:start + step])
            out.extend(self._generate_chunk(chunk, n, do_sample, temperature, seed))
        return out

    def _generate_chunk(self, clips: list[PreparedClip], n: int, do_sample: bool, temperature: float | None,
                        seed: int | None) -> list[list[Answer]]:
        a = self.adapter
        prompts = [a.prompt(c, self.question) for c in clips]
        rep_clips = [c for c in clips for _ in range(n)]
        rep_prompts = [p for p in prompts for _ in range(n)]
        self._check_batch(rep_prompts)
        try:
            inputs = a.batch_inputs(rep_clips, rep_prompts)
            gens = generate(a.model, a.tokenizer, inputs, options=self.options, stop_ids=a.stop_ids,
                            level_ids=a.level_ids, num_return=1, do_sample=do_sample, temperature=temperature,
                            seed=seed)
        except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - needs a GPU
            est = a.memory_estimate(len(rep_prompts), max(len(p) for p in rep_prompts) // 3,
                                    self.options.max_new_tokens)
            raise ModelTooLarge(f"out of memory generating {len(rep_prompts)} answer(s) at once (estimated need "
                                f"{est.describe()}); lower batch_size or num_samples") from e
        lo_hi = tuple(self.card.score_range)
        answers = [self.task.interpret(g, a.tokenizer, a.level_ids, lo_hi) for g in gens]
        return [answers[i * n:(i + 1) * n] for i in range(len(clips))]

    def _check_batch(self, prompts: list[str]) -> None:
        if self.device.type != "cuda":
            return
        free = available_bytes(self.device)
        if free is None:
            return
        tokens = max(len(self.adapter.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts[:1])
        est = self.adapter.memory_estimate(len(prompts), tokens, self.options.max_new_tokens)
        kv_and_act = est.kv_cache + est.activations
        if kv_and_act > free:
            raise ModelTooLarge(f"{len(prompts)} sequence(s) of ~{tokens} prompt tokens + "
                                f"{self.options.max_new_tokens} new tokens need about {kv_and_act / 2**30:.1f} GiB "
                                f"beyond the weights but {free / 2**30:.1f} GiB are free; lower batch_size, "
                                "num_samples or max_new_tokens")

    def score(self, videos: Sequence[Any], fps: float | None = None,
              max_pixels: int | None = None) -> tuple[torch.Tensor, list[QualityResult]]:
        """Score several videos: ``(scores (B,) float32 with NaN for unparsed answers, results)``."""
        if len(videos) == 0:
            raise InvalidVideoInput("the batch is empty; pass at least one video")
        opts = self.options
        prepared = [self.prepare(v, fps, max_pixels) for v in videos]
        clips = [p[0] for p in prepared]
        t0 = time.perf_counter()
        answers = self._generate(clips, opts.num_samples, opts.sample, None, opts.seed)
        retries_used = [0] * len(clips)
        for attempt in range(opts.retries):
            todo = [i for i, ans in enumerate(answers) if not any(a.ok for a in ans)]
            if not todo:
                break
            seed = None if opts.seed is None else opts.seed + 1000 * (attempt + 1)
            extra = self._generate([clips[i] for i in todo], 1, True, opts.retry_temperature, seed)
            for i, more in zip(todo, extra):
                answers[i] = answers[i] + more
                retries_used[i] += 1
                self.stats["retries"] += 1
        _sync(self.device)
        infer = (time.perf_counter() - t0) / len(clips)
        scores, results = [], []
        for (clip, ctx), ans, retried in zip(prepared, answers, retries_used):
            result = self._result(ctx, ans, retried, infer)
            scores.append(result.score)
            results.append(result)
        return torch.tensor(scores, dtype=torch.float32), results

    explain = score

    def _result(self, ctx, answers: list[Answer], retried: int, infer_time: float) -> QualityResult:
        opts = self.options
        ok = [a for a in answers if a.ok]
        self.stats["clips"] += 1
        self.stats["answers"] += len(answers)
        self.stats["answer_failures"] += len(answers) - len(ok)
        values = [a.value(opts.scoring) for a in ok]
        dims: dict[str, float] = {}
        if ok:
            score = float(sum(values) / len(values))
            rep = min(ok, key=lambda a: abs(a.value(opts.scoring) - score))
            for name in ok[0].dimensions:
                vals = [a.dimension_values(opts.scoring)[name] for a in ok]
                dims[name] = round(float(sum(vals) / len(vals)), 6)
        else:
            self.stats["parse_failures"] += 1
            score = float("nan")
            rep = answers[-1]
        parsed = [a.score for a in ok]
        expected = [a.expected for a in ok]
        generation = {
            "family": self.adapter.family, "prompt": self.task.kind, "scoring": opts.scoring,
            "num_samples": opts.num_samples, "max_new_tokens": opts.max_new_tokens,
            "temperature": opts.temperature if opts.sample else None, "seed": opts.seed if opts.sample else None,
            "answers": len(answers), "answers_parsed": len(ok), "retries": retried,
            "parsed_score": round(sum(parsed) / len(parsed), 6) if parsed else None,
            "expected_score": (round(sum(expected) / len(expected), 6)
                               if expected and all(e is not None for e in expected) else None),
            "sample_scores": [None if not a.ok else round(a.value(opts.scoring), 6) for a in answers],
            "level_probs": [round(p, 6) for p in rep.level_probs] if rep.level_probs else None,
            "out_of_range": any(a.out_of_range for a in ok),
            "failure": None if ok else rep.reason,
        }
        if self.task.kind == "dimensions":
            generation["dimensions_expected"] = {k: round(v, 6) for k, v in rep.dimensions_expected.items()}
        plan, info = ctx["plan"], ctx["info"]
        sampling = dict(plan.describe(), generation=generation)
        timings = dict(ctx["timings"], inference=infer_time)
        timings["total"] = sum(timings.values())
        return QualityResult(
            score=score, model=self.card.name, model_version=self.card.version, source=info.source, dimensions=dims,
            text=rep.reasoning, raw_answer=rep.text, parse_ok=bool(ok), sampling=sampling, clip=info.to_dict(),
            timings={k: round(v, 6) for k, v in timings.items()})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["LMMScorer", "FAMILIES", "adapter_class"]
