"""Turning one generated answer into scores: the overall-rating task (and the shared pieces).

An :class:`Answer` holds what was read from one response: the parsed overall score (clamped), the
expected score from the level-token probabilities where the answer's leading digit is a level
token, per-dimension values for the dimension task, and the reason when parsing failed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .generation import Generated, token_at_char
from .parsing import expected_score, parse_score, reasoning_text
from .prompts import question_text

LEVELS = (1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass
class Answer:
    ok: bool
    text: str
    score: float | None = None
    expected: float | None = None
    level_probs: list[float] | None = None
    dimensions: dict[str, float] = field(default_factory=dict)
    dimensions_expected: dict[str, float] = field(default_factory=dict)
    out_of_range: bool = False
    reason: str = ""

    @property
    def reasoning(self) -> str:
        return reasoning_text(self.text)

    def value(self, scoring: str) -> float | None:
        """The score to use: ``expected`` when asked for and available, else the parsed one."""
        if scoring == "expected" and self.expected is not None:
            return self.expected
        return self.score

    def dimension_values(self, scoring: str) -> dict[str, float]:
        if scoring == "expected":
            return {k: self.dimensions_expected.get(k, v) for k, v in self.dimensions.items()}
        return dict(self.dimensions)


def expected_at(gen: Generated, tokenizer, level_ids: Sequence[int] | None, span: tuple[int, int] | None,
                value: float, raw_value: float,
                score_range: tuple[float, float]) -> tuple[float | None, list[float] | None]:
    """Expected score of the number at ``span`` of ``gen.text`` (None when its leading digit was not
    generated as one of the level tokens, or the number is out of range)."""
    if not level_ids or span is None or gen.level_logprobs.numel() == 0:
        return None, None
    if not score_range[0] <= raw_value <= score_range[1]:
        return None, None
    i = token_at_char(tokenizer, gen.token_ids, span[0])
    if i is None or i >= gen.level_logprobs.shape[0]:
        return None, None
    tid = gen.token_ids[i]
    if tid not in level_ids:
        return None, None
    digit = list(level_ids).index(tid) + 1
    if gen.text[span[0]] != str(digit):  # the digit token must be the number's first character
        return None, None
    probs = gen.level_logprobs[i].exp().tolist()
    return expected_score(value, digit, probs, LEVELS[:len(level_ids)], score_range), probs


class OverallTask:
    """One overall 1-5 rating with reasoning."""

    kind = "overall"
    dimensions: tuple[str, ...] = ()

    def question(self, one_score: bool = False) -> str:
        return question_text("overall", one_score=one_score)

    def interpret(self, gen: Generated, tokenizer, level_ids, score_range=(1.0, 5.0)) -> Answer:
        p = parse_score(gen.text, score_range)
        if not p.ok:
            return Answer(ok=False, text=gen.text, reason=p.reason + ("" if gen.stopped else
                                                                     " (generation hit max_new_tokens)"))
        exp, probs = expected_at(gen, tokenizer, level_ids, p.number_span, p.value, p.raw_value, score_range)
        return Answer(ok=True, text=gen.text, score=p.value, expected=exp, level_probs=probs,
                      out_of_range=p.out_of_range)


__all__ = ["Answer", "OverallTask", "expected_at", "LEVELS"]
