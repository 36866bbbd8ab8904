"""Batched generation shared by every family: left padding, greedy or sampled, level-token logging.

:func:`generate` runs one ``model.generate`` call for a whole batch (``num_return_sequences``
answers per clip when sampling) with a generation config built here, so settings stored in a
checkpoint's ``generation_config.json`` (repetition penalties, default sampling ...) never change
what vqametric computes. A logits processor records, at every step, the log-probabilities of the
level tokens ``"1"`` ... ``"5"`` under the full-vocabulary softmax of the raw logits; the scorer
uses them for the expected score.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ...errors import InvalidOption


@dataclass
class GenerationOptions:
    """How answers are generated and turned into scores.

    ``num_samples``: answers per clip; 1 is greedy decoding (deterministic), more samples with
    ``temperature`` / ``top_p`` / ``top_k`` (0 = off) and the parseable answers' scores are averaged.
    ``retries``: extra sampled attempts for clips whose answers could not be parsed.
    ``scoring``: ``"parsed"`` (the number the model wrote) or ``"expected"`` (its leading digit
    replaced by the probability-weighted mean of the level tokens 1-5, Q-Align style).
    ``seed``: seeds sampling (the global RNG is left untouched); None uses the global RNG.
    ``batch_size``: clips per ``generate`` call.
    """

    max_new_tokens: int = 1024
    num_samples: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    retries: int = 0
    retry_temperature: float = 1.0
    scoring: str = "parsed"
    seed: int | None = 0
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InvalidOption("max_new_tokens must be at least 1")
        if self.num_samples < 1:
            raise InvalidOption("num_samples must be at least 1")
        if self.retries < 0:
            raise InvalidOption("retries must be >= 0")
        if self.batch_size < 1:
            raise InvalidOption("batch_size must be at least 1")
        if self.scoring not in ("parsed", "expected"):
            raise InvalidOption(f"scoring must be 'parsed' or 'expected', got {self.scoring!r}")
        if not (self.temperature > 0 and self.retry_temperature > 0):
            raise InvalidOption("temperatures must be positive")
        if not 0 < self.top_p <= 1:
            raise InvalidOption("top_p must be in (0, 1]")

    @property
    def sample(self) -> bool:
        return self.num_samples > 1


@dataclass
class Generated:
    """One generated answer: its tokens (stop token excluded), text, and per-step level log-probs."""

    token_ids: list[int]
    text: str
    level_logprobs: torch.Tensor          # (steps, n_levels) float32, CPU
    stopped: bool                         # ended with a stop token (not cut by max_new_tokens)
    offsets: list[int] = field(default_factory=list, repr=False)


class LevelRecorder:
    """Logits processor that records ``log_softmax(logits)[:, level_ids]`` at each step (unchanged scores)."""

    def __init__(self, level_ids: Sequence[int]):
        self.level_ids = torch.tensor(list(level_ids), dtype=torch.long)
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = self.level_ids.to(scores.device)
        self.steps.append(torch.log_softmax(scores.float(), dim=-1).index_select(1, ids).cpu())
        return scores

    def stacked(self, rows: int) -> torch.Tensor:
        if not self.steps:
            return torch.zeros(rows, 0, len(self.level_ids))
        return torch.stack(self.steps, dim=1)


def level_token_ids(tokenizer, levels: Sequence[str] = ("1", "2", "3", "4", "5")) -> list[int] | None:
    """Token ids of the level strings when each is exactly one token, else None."""
    ids = []
    for s in levels:
        enc = tokenizer.encode(s, add_special_tokens=False)
        if len(enc) != 1:
            return None
        ids.append(int(enc[0]))
    return ids if len(set(ids)) == len(ids) else None


def stop_token_ids(tokenizer, extra: Sequence[str] = ("<|im_end|>", "<|endoftext|>")) -> list[int]:
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    for tok in extra:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return list(dict.fromkeys(ids))


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device):
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def generate(model, tokenizer, model_inputs: dict[str, Any], *, options: GenerationOptions, stop_ids: Sequence[int],
             level_ids: Sequence[int] | None, num_return: int = 1, do_sample: bool = False,
             temperature: float | None = None, seed: int | None = None) -> list[Generated]:
    """Generate for a prepared batch; returns ``batch * num_return`` answers, clip-major."""
    from transformers import GenerationConfig, LogitsProcessorList  # optional: transformers (the lmm extra)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(stop_ids[0])
    cfg = GenerationConfig(
        max_new_tokens=options.max_new_tokens, do_sample=do_sample, num_beams=1,
        num_return_sequences=num_return, eos_token_id=list(stop_ids), pad_token_id=pad_id,
        temperature=(temperature or options.temperature) if do_sample else None,
        top_p=options.top_p if do_sample else None, top_k=options.top_k if do_sample else None,
        repetition_penalty=None, use_cache=True)
    recorder = LevelRecorder(level_ids) if level_ids else None
    processors = LogitsProcessorList([recorder] if recorder else [])
    device = next(iter(model_inputs.values())).device
    # the checkpoint's own generation defaults must not leak in: generate() fills unset fields from it
    saved = model.generation_config
    model.generation_config = GenerationConfig(eos_token_id=list(stop_ids), pad_token_id=pad_id)
    try:
        with torch.inference_mode(), _seeded(seed if do_sample else None, device):
            out = model.generate(**model_inputs, generation_config=cfg, logits_processor=processors)
    finally:
        model.generation_config = saved
    sequences = out if isinstance(out, torch.Tensor) else out.sequences
    prompt_len = model_inputs["input_ids"].shape[1] if "input_ids" in model_inputs else 0
    new = sequences[:, prompt_len:].cpu()
    levels = recorder.stacked(new.shape[0]) if recorder else None
    stops = set(int(s) for s in stop_ids)
    results = []
    for row in range(new.shape[0]):
        ids = new[row].tolist()
        cut = next((i for i, t in enumerate(ids) if t in stops), None)
        body = ids if cut is None else ids[:cut]
        text = decode(tokenizer, body)
        lp = levels[row, : len(body)] if levels is not None else torch.zeros(len(body), 0)
        results.append(Generated(token_ids=body, text=text, level_logprobs=lp, stopped=cut is not None))
    return results


def decode(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def token_at_char(tokenizer, ids: Sequence[int], char_pos: int) -> int | None:
    """Index of the token whose decoded text covers character ``char_pos`` of ``decode(ids)``."""
    n = len(ids)
    if n == 0:
        return None
    lo, hi = 1, n
    if len(decode(tokenizer, ids)) <= char_pos:
        return None
    while lo < hi:  # smallest k with len(decode(ids[:k])) > char_pos
        mid = (lo + hi) // 2
        if len(decode(tokenizer, ids[:mid])) > char_pos:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


__all__ = ["GenerationOptions", "Generated", "LevelRecorder", "level_token_ids", "stop_token_ids", "generate",
           "decode", "token_at_char"]
