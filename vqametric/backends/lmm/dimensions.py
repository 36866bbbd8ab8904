"""Multi-dimension prompting: discrete 1-5 ratings of named dimensions in one structured answer.

By default the five UltraVQA dimensions (Motion Quality, Motion Amplitude, Aesthetic Quality,
Content Quality, Clarity Quality) plus an "Overall Quality" score, asked for as ``Name: rating``
lines inside ``<answer>`` (see :func:`~vqametric.backends.lmm.prompts.dimensions_task`). Works with
every family: the adapter puts its visual placeholders in front of the question.

Each rating is parsed with :func:`~vqametric.backends.lmm.parsing.parse_dimensions` (clamped to
1-5) and, when its digit was generated as a level token, also has an expected value
``sum_k p(k) * k`` over the level tokens 1-5 at that position. The answer parses only when every
dimension and the overall score are present; the overall score is the result's ``score`` and the
ratings go to ``QualityResult.dimensions``.
"""
from __future__ import annotations

from typing import Sequence

from .generation import Generated
from .parsing import parse_dimensions
from .prompts import OVERALL_NAME, ULTRAVQA_DIMENSIONS, dimensions_task
from .tasks import Answer, expected_at


class DimensionsTask:
    kind = "dimensions"

    def __init__(self, dimensions: Sequence[str] = ULTRAVQA_DIMENSIONS, overall_name: str = OVERALL_NAME):
        if not dimensions:
            raise ValueError("the dimension task needs at least one dimension name")
        self.dimensions = tuple(dimensions)
        self.overall_name = overall_name

    def question(self, one_score: bool = False) -> str:
        return dimensions_task(self.dimensions, self.overall_name)

    def interpret(self, gen: Generated, tokenizer, level_ids, score_range=(1.0, 5.0)) -> Answer:
        p = parse_dimensions(gen.text, self.dimensions, score_range, self.overall_name)
        if not p.ok:
            return Answer(ok=False, text=gen.text, dimensions=dict(p.values),
                          reason=p.reason + ("" if gen.stopped else " (generation hit max_new_tokens)"))
        dims_exp = {}
        for name, value in p.values.items():
            e, _ = expected_at(gen, tokenizer, level_ids, p.spans.get(name), value, p.raw_values[name], score_range)
            if e is not None:
                dims_exp[name] = e
        o = p.overall
        exp, probs = expected_at(gen, tokenizer, level_ids, o.number_span, o.value, o.raw_value, score_range)
        out_of_range = o.out_of_range or any(not score_range[0] <= v <= score_range[1] for v in p.raw_values.values())
        return Answer(ok=True, text=gen.text, score=o.value, expected=exp, level_probs=probs,
                      dimensions=dict(p.values), dimensions_expected=dims_exp, out_of_range=out_of_range)


__all__ = ["DimensionsTask"]
