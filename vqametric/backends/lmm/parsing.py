"""Reading scores out of reasoning-model answers.

The models answer in the R1 format ``<think> ... </think> <answer> ... </answer>``. The rules:

* ``<think>`` sections are removed first, so numbers in the reasoning never count;
* the answer is the text after the first ``<answer>`` tag, up to ``</answer>`` (or to the end of
  the response when the closing tag is missing, e.g. the model stopped right after the number);
* the score is the first number in the answer. Any Unicode decimal digit counts (Arabic-Indic
  ``٣``, full-width ``３``, Devanagari ...), as do the decimal separators ``.``, ``,`` (a 1-5
  rating has no thousands), ``٫`` and full-width ``．``;
* the value is clamped to the score range (``out_of_range`` records that it had to be);
* no ``<answer>`` tag, or no number inside it, is a parse failure (``ok=False``) with the reason.
  Nothing is guessed from the reasoning and no constant is substituted.

Character offsets (``number_span``) refer to the original response, so the token that produced a
digit can be found for the expected-score computation (:func:`expected_from_level_probs`).
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

# one-character decimal separators mapped to "." (same length keeps offsets valid)
_DECIMAL_SEPARATORS = {"\u066b": ".", "\uff0e": ".", "\uff0c": ",", "\u3002": "."}
_SIGNS = {"\u2212": "-", "\uff0d": "-", "\uff0b": "+", "\u2013": "-"}
_NUMBER = re.compile(r"(?<![0-9.])([-+]?)([0-9]+(?:[.,][0-9]+)?)")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"


def normalise_digits(text: str) -> str:
    """``text`` with every Unicode decimal digit replaced by its ASCII digit and the other decimal
    separators / minus signs by ASCII ones. One character in, one character out."""
    out = []
    for ch in text:
        if ch < "\x80":
            out.append(ch)
            continue
        d = unicodedata.decimal(ch, None)
        if d is not None:
            out.append(str(d))
        else:
            out.append(_DECIMAL_SEPARATORS.get(ch) or _SIGNS.get(ch) or ch)
    return "".join(out)


def _mask_think(text: str) -> str:
    """``text`` with ``<think>`` sections blanked out (same length)."""
    return _THINK.sub(lambda m: " " * len(m.group(0)), text)


def answer_span(text: str) -> tuple[int, int, bool] | None:
    """``(start, end, closed)`` of the answer body in ``text``, or None without an ``<answer>`` tag."""
    masked = _mask_think(text)
    i = masked.find(_ANSWER_OPEN)
    if i < 0:
        return None
    start = i + len(_ANSWER_OPEN)
    j = masked.find(_ANSWER_CLOSE, start)
    return (start, j, True) if j >= 0 else (start, len(text), False)


def reasoning_text(text: str) -> str:
    """The reasoning: the ``<think>`` section(s), or the text before ``<answer>`` without them."""
    parts = re.findall(r"<think>(.*?)(?:</think>|$)", text, re.DOTALL)
    if parts:
        return "\n".join(p.strip() for p in parts).strip()
    span = answer_span(text)
    return (text[: span[0] - len(_ANSWER_OPEN)] if span else text).strip()


@dataclass
class ParsedScore:
    """One number read from an answer.

    ``value``: the clamped score (None when ``ok`` is False); ``raw_value``: the number as written;
    ``number_span``: its ``(start, end)`` characters in the response; ``reason``: why parsing failed.
    """

    ok: bool
    value: float | None = None
    raw_value: float | None = None
    out_of_range: bool = False
    answer: str | None = None
    number_span: tuple[int, int] | None = None
    reason: str = ""


def _first_number(text: str, start: int, end: int) -> tuple[float, tuple[int, int]] | None:
    norm = normalise_digits(text[start:end])
    m = _NUMBER.search(norm)
    if m is None:
        return None
    sign = -1.0 if m.group(1) == "-" else 1.0
    value = sign * float(m.group(2).replace(",", "."))
    return value, (start + m.start(2), start + m.end(2))


def _clamp(value: float, lo: float, hi: float) -> tuple[float, bool]:
    clamped = min(hi, max(lo, value))
    return clamped, clamped != value


def parse_score(text: str, score_range: tuple[float, float] = (1.0, 5.0)) -> ParsedScore:
    """The first number inside the answer of ``text``, clamped to ``score_range``."""
    span = answer_span(text)
    if span is None:
        return ParsedScore(ok=False, reason="no <answer> tag in the response")
    start, end, closed = span
    answer = text[start:end].strip()
    found = _first_number(text, start, end)
    if found is None:
        why = "no number inside <answer>" + ("" if closed else " (and no closing </answer>)")
        return ParsedScore(ok=False, answer=answer, reason=why)
    raw, nspan = found
    if not math.isfinite(raw):
        return ParsedScore(ok=False, answer=answer, reason="the answer is not a finite number")
    value, clipped = _clamp(raw, *score_range)
    return ParsedScore(ok=True, value=value, raw_value=raw, out_of_range=clipped, answer=answer, number_span=nspan)


@dataclass
class ParsedDimensions:
    """Per-dimension ratings read from one answer (``values`` are clamped)."""

    ok: bool
    values: dict[str, float] = field(default_factory=dict)
    raw_values: dict[str, float] = field(default_factory=dict)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    overall: ParsedScore | None = None
    answer: str | None = None
    reason: str = ""


def _name_pattern(name: str) -> re.Pattern:
    words = [re.escape(w) for w in name.split()]
    # "Motion Quality", "motion_quality", "**Motion-Quality**", "\"Motion Quality\"" ...
    return re.compile(r"[\W_]*".join(words) + r"(?![A-Za-z])", re.IGNORECASE)


def parse_dimensions(text: str, names: Sequence[str], score_range: tuple[float, float] = (1.0, 5.0),
                     overall_name: str | None = "Overall Quality") -> ParsedDimensions:
    """Ratings of ``names`` from an answer written as ``Name: rating`` items (one per line, JSON, or
    comma separated). A dimension's rating is the first number after its name and before the next
    named item. ``ok`` needs every dimension and, when ``overall_name`` is given, the overall score."""
    span = answer_span(text)
    if span is None:
        return ParsedDimensions(ok=False, missing=list(names), reason="no <answer> tag in the response")
    start, end, _ = span
    body = text[start:end]
    labels = list(names) + ([overall_name] if overall_name else [])
    found: list[tuple[int, int, str]] = []  # (name start, name end, label)
    masked = body
    # longest names first so that "Motion Quality" is not taken for part of another label
    for label in sorted(labels, key=len, reverse=True):
        m = _name_pattern(label).search(masked)
        if m is not None:
            found.append((m.start(), m.end(), label))
            masked = masked[:m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
    found.sort()
    out = ParsedDimensions(ok=False, answer=body.strip())
    for k, (s, e, label) in enumerate(found):
        stop = found[k + 1][0] if k + 1 < len(found) else len(body)
        hit = _first_number(text, start + e, start + stop)
        if hit is None:
            continue
        raw, nspan = hit
        value, clipped = _clamp(raw, *score_range)
        if label == overall_name and overall_name is not None:
            out.overall = ParsedScore(ok=True, value=value, raw_value=raw, out_of_range=clipped,
                                      answer=body.strip(), number_span=nspan)
        else:
            out.values[label], out.raw_values[label], out.spans[label] = value, raw, nspan
    out.missing = [n for n in names if n not in out.values]
    if overall_name is not None and out.overall is None:
        out.missing.append(overall_name)
    out.ok = not out.missing
    if out.missing:
        out.reason = "missing rating(s) for " + ", ".join(out.missing)
    return out


def expected_from_level_probs(probs: Sequence[float], levels: Sequence[float]) -> float:
    """Q-Align style expected score: ``sum_i p_i * level_i`` with ``p`` renormalised over the levels."""
    total = float(sum(probs))
    if not total > 0:
        raise ValueError("the level probabilities sum to zero; no expected score")
    return float(sum(p * v for p, v in zip(probs, levels)) / total)


def expected_score(parsed_value: float, leading_digit: int, probs: Sequence[float], levels: Sequence[float],
                   score_range: tuple[float, float] = (1.0, 5.0)) -> float:
    """Expected score of an answer whose leading digit was drawn from ``probs`` over ``levels``.

    The generated leading digit is replaced by its expectation and the rest of the number kept:
    ``parsed + (E[level] - leading_digit)``, clamped. For an integer answer (a discrete level) this
    is exactly ``E[level]``; for ``3.45`` with ``p(3) = p(4) = 0.5`` it is ``3.95``.
    """
    e = expected_from_level_probs(probs, levels)
    return _clamp(parsed_value + (e - leading_digit), *score_range)[0]


__all__ = ["normalise_digits", "answer_span", "reasoning_text", "ParsedScore", "parse_score", "ParsedDimensions",
           "parse_dimensions", "expected_from_level_probs", "expected_score"]
