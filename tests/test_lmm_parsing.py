"""Reading scores from reasoning-model answers, and the expected-score maths worked by hand."""
import math

import pytest

from vqametric.backends.lmm.parsing import (answer_span, expected_from_level_probs, expected_score, normalise_digits,
                                            parse_dimensions, parse_score, reasoning_text)
from vqametric.backends.lmm.prompts import ULTRAVQA_DIMENSIONS, dimensions_task, question_text


@pytest.mark.parametrize("text, value", [
    ("<think>The video is sharp.</think><answer>3.75</answer>", 3.75),
    ("<think>a</think>\n<answer> 4 </answer>", 4.0),
    ("<answer>The score is 2.5 out of 5.</answer>", 2.5),                     # several numbers: the first
    ("<answer>4/5</answer>", 4.0),
    ("<answer>Rating: 3.2; confidence 0.9</answer>", 3.2),
    ("<answer>٣٫٥</answer>", 3.5),                                            # Arabic-Indic digits + separator
    ("<answer>۴</answer>", 4.0),                                              # extended Arabic-Indic
    ("<answer>４．２５</answer>", 4.25),                                      # full-width digits and point
    ("<answer>३.१</answer>", 3.1),                                           # Devanagari
    ("<answer>3,5</answer>", 3.5),                                            # decimal comma
    ("<think>I would give 1.0 at first</think><answer>4.50</answer>", 4.5),   # numbers in the reasoning ignored
    ("<answer>4.2", 4.2),                                                     # stopped before </answer>
    ("<answer>4.20</answer><answer>1</answer>", 4.2),                         # first answer block
])
def test_parse_well_formed(text, value):
    p = parse_score(text)
    assert p.ok and p.value == pytest.approx(value) and not p.out_of_range
    assert p.reason == ""


@pytest.mark.parametrize("text, value, raw", [
    ("<answer>7.3</answer>", 5.0, 7.3),
    ("<answer>0.4</answer>", 1.0, 0.4),
    ("<answer>-2</answer>", 1.0, -2.0),
    ("<answer>\u22122</answer>", 1.0, -2.0),      # Unicode minus
    ("<answer>100</answer>", 5.0, 100.0),
])
def test_out_of_range_is_clamped_and_flagged(text, value, raw):
    p = parse_score(text)
    assert p.ok and p.value == value and p.raw_value == raw and p.out_of_range


@pytest.mark.parametrize("text, reason", [
    ("<think>The video is good, I rate it 4.</think>", "no <answer>"),   # a number, but no answer tag
    ("The quality is 3.5", "no <answer>"),
    ("<answer>excellent</answer>", "no number"),
    ("<answer></answer>", "no number"),
    ("<think>truncated reasoning with <answer>4</answer> quoted", "no <answer>"),  # unclosed think swallows it
    ("", "no <answer>"),
])
def test_malformed_answers_fail(text, reason):
    p = parse_score(text)
    assert not p.ok and p.value is None and reason in p.reason


def test_offsets_point_at_the_number():
    text = "<think>x 2</think><answer>score ٣.٥</answer>"
    p = parse_score(text)
    s, e = p.number_span
    assert normalise_digits(text[s:e]) == "3.5"
    assert answer_span(text)[2] is True
    assert normalise_digits("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹０１２３４５６７８９") == "0123456789" * 3


def test_reasoning_text():
    assert reasoning_text("<think> blur everywhere </think><answer>2</answer>") == "blur everywhere"
    assert reasoning_text("Looks fine. <answer>4</answer>") == "Looks fine."
    assert reasoning_text("no tags at all") == "no tags at all"


def test_parse_dimensions_lines_json_and_markdown():
    lines = ("<think>...</think><answer>\nMotion Quality: 4\nMotion Amplitude: 2\nAesthetic Quality: 3\n"
             "Content Quality: 5\nClarity Quality: 4\nOverall Quality: 3.85\n</answer>")
    p = parse_dimensions(lines, ULTRAVQA_DIMENSIONS)
    assert p.ok and p.values == {"Motion Quality": 4, "Motion Amplitude": 2, "Aesthetic Quality": 3,
                                 "Content Quality": 5, "Clarity Quality": 4}
    assert p.overall.value == pytest.approx(3.85)
    as_json = ('<answer>{"motion_quality": 3, "motion amplitude": 5, "**Aesthetic Quality**": 2, '
               '"Content Quality": "4", "Clarity Quality": 7, "Overall Quality": 3.1}</answer>')
    q = parse_dimensions(as_json, ULTRAVQA_DIMENSIONS)
    assert q.ok and q.values["Motion Quality"] == 3 and q.values["Motion Amplitude"] == 5
    assert q.values["Clarity Quality"] == 5 and q.raw_values["Clarity Quality"] == 7   # clamped
    missing = parse_dimensions("<answer>Motion Quality: 4, Clarity Quality: 3</answer>", ULTRAVQA_DIMENSIONS)
    assert not missing.ok and "Motion Amplitude" in missing.missing and "Overall Quality" in missing.missing
    assert missing.values == {"Motion Quality": 4, "Clarity Quality": 3}
    assert not parse_dimensions("Motion Quality: 4", ULTRAVQA_DIMENSIONS).ok


def test_expected_score_by_hand():
    # Q-Align: p = (0.1, 0.2, 0.4, 0.2, 0.1) -> 0.1 + 0.4 + 1.2 + 0.8 + 0.5 = 3.0
    assert expected_from_level_probs([0.1, 0.2, 0.4, 0.2, 0.1], [1, 2, 3, 4, 5]) == pytest.approx(3.0)
    # unnormalised (the level tokens' share of the full-vocabulary softmax): renormalised first
    # 0.05*4 + 0.15*5 = 0.95 over 0.2 -> 4.75
    assert expected_from_level_probs([0, 0, 0, 0.05, 0.15], [1, 2, 3, 4, 5]) == pytest.approx(4.75)
    # integer answer: exactly the expectation
    assert expected_score(4.0, 4, [0, 0, 0.5, 0.5, 0], [1, 2, 3, 4, 5]) == pytest.approx(3.5)
    # "3.45" with p(3) = p(4) = 0.5: leading digit 3 -> 3.5, keep .45 -> 3.95
    assert expected_score(3.45, 3, [0, 0, 0.5, 0.5, 0], [1, 2, 3, 4, 5]) == pytest.approx(3.95)
    # clamped to the range: "4.9" with p(5) = 1 -> 5.9 -> 5
    assert expected_score(4.9, 4, [0, 0, 0, 0, 1], [1, 2, 3, 4, 5]) == 5.0
    with pytest.raises(ValueError):
        expected_from_level_probs([0, 0, 0, 0, 0], [1, 2, 3, 4, 5])
    assert math.isclose(expected_from_level_probs([1, 1, 1, 1, 1], [1, 2, 3, 4, 5]), 3.0)


def test_questions():
    q = question_text("overall")
    assert q.endswith("excellent quality.First output the thinking process in <think> </think> tags and then output "
                      "the final answer in <answer> </answer> tags.")
    assert "with only one score" in question_text("overall", one_score=True)
    d = dimensions_task()
    for name in ULTRAVQA_DIMENSIONS + ("Overall Quality",):
        assert f"{name}: <rating>" in d
    with pytest.raises(ValueError):
        question_text("nope")
