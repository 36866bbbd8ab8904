"""QualityResult: a score is finite unless the answer could not be parsed; then it is missing."""
import json
import math

import pytest

from vqametric import QualityResult


def test_finite_scores_only_unless_unparsed():
    with pytest.raises(ValueError, match="must be finite"):
        QualityResult(score=float("nan"), model="m")
    with pytest.raises(ValueError, match="must be finite"):
        QualityResult(score=float("inf"), model="m", parse_ok=False)
    r = QualityResult(score=float("nan"), model="m", parse_ok=False, raw_answer="<answer>great</answer>")
    assert math.isnan(float(r))
    d = json.loads(r.to_json())
    assert d["score"] is None and d["parse_ok"] is False


def test_round_trip_of_a_normal_result():
    r = QualityResult(score=3.25, model="m", dimensions={"Clarity Quality": 4.0})
    assert json.loads(r.to_json())["score"] == 3.25 and r.to_dict()["dimensions"] == {"Clarity Quality": 4.0}
