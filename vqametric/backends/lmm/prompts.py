"""Questions asked to the reasoning models, and the chat framing around them.

Two kinds of question:

* ``"overall"``: one 1-5 rating with reasoning, in the wording the R1-style quality models were
  trained with (VQAThinker uses it verbatim after its frame / motion placeholders);
* ``"dimensions"``: a discrete 1-5 rating for each named dimension (by default the five UltraVQA
  dimensions) plus an overall score, in one structured answer (parsed by
  :func:`~vqametric.backends.lmm.parsing.parse_dimensions`).

The chat framing is ChatML (``<|im_start|>role\\n ... <|im_end|>\\n``), which every supported family
uses; each adapter supplies its system message and its visual placeholder.
"""
from __future__ import annotations

from typing import Sequence

ULTRAVQA_DIMENSIONS = ("Motion Quality", "Motion Amplitude", "Aesthetic Quality", "Content Quality",
                       "Clarity Quality")
OVERALL_NAME = "Overall Quality"

#: What each UltraVQA dimension asks about (shown to the model next to the name).
DIMENSION_HINTS = {
    "Motion Quality": "smoothness and naturalness of movement, no stutter, jitter or warping",
    "Motion Amplitude": "how much movement there is (1 = almost static, 5 = large, fast motion)",
    "Aesthetic Quality": "composition, lighting, colour and overall visual appeal",
    "Content Quality": "how coherent, plausible and free of artefacts the depicted content is",
    "Clarity Quality": "sharpness and detail; no blur, noise or compression artefacts",
}

# The task sentence and the output-format sentence of the VQAThinker / VisualQuality-R1 prompts.
# Kept character for character: the released checkpoints were trained with exactly this wording.
OVERALL_TASK = ("You are doing the video quality assessment task. Here is the question: "
                "What is your overall rating on the quality of this video? The rating should be a float "
                "between 1 and 5, rounded to two decimal places, with 1 representing very poor quality and 5 "
                "representing excellent quality.")
THINK_ANSWER_FORMAT = ("First output the thinking process in <think> </think> tags and then output the final "
                       "answer in <answer> </answer> tags.")
THINK_ONE_SCORE_FORMAT = ("First output the thinking process in <think> </think> tags and then output the final "
                          "answer with only one score in <answer> </answer> tags.")

PROMPT_KINDS = ("overall", "dimensions")


def dimensions_task(names: Sequence[str] = ULTRAVQA_DIMENSIONS, overall_name: str = OVERALL_NAME) -> str:
    """The question for per-dimension ratings of ``names`` and an overall score."""
    lines = []
    for n in names:
        hint = DIMENSION_HINTS.get(n)
        lines.append(f"- {n}" + (f": {hint}" if hint else ""))
    form = "\n".join(f"{n}: <rating>" for n in (*names, overall_name))
    return ("You are doing the video quality assessment task. Rate this video on each of the following "
            "dimensions with an integer from 1 (very poor) to 5 (excellent):\n" + "\n".join(lines) + "\n"
            f"Then give the {overall_name.lower()} of the video as a float between 1 and 5, rounded to two "
            "decimal places.\nFirst output the thinking process in <think> </think> tags and then output "
            "the final answer in <answer> </answer> tags, one item per line, exactly in this form:\n"
            f"<answer>\n{form}\n</answer>")


def question_text(kind: str, dimensions: Sequence[str] = ULTRAVQA_DIMENSIONS, *, one_score: bool = False) -> str:
    """The task + format text of a ``kind`` question (without any visual placeholder)."""
    if kind == "overall":
        return OVERALL_TASK + (" " + THINK_ONE_SCORE_FORMAT if one_score else THINK_ANSWER_FORMAT)
    if kind == "dimensions":
        return dimensions_task(dimensions)
    raise ValueError(f"unknown prompt kind {kind!r}; use one of {PROMPT_KINDS}")


def chatml(user: str, system: str | None = None, assistant_prefix: str = "") -> str:
    """One user turn in ChatML, ending with the assistant's turn opened (generation prompt)."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant_prefix}"


__all__ = ["ULTRAVQA_DIMENSIONS", "OVERALL_NAME", "DIMENSION_HINTS", "OVERALL_TASK", "THINK_ANSWER_FORMAT",
           "THINK_ONE_SCORE_FORMAT", "PROMPT_KINDS", "dimensions_task", "question_text", "chatml"]
