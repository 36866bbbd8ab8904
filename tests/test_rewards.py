"""VQAThinker's GRPO rewards against numbers worked out by hand (the arithmetic is in the comments)."""
import math

import numpy as np
import pytest

from vqametric.train.reasoning import rewards as R


def phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# ----------------------------------------------------------------------------------------------
# reading the answer
def test_answer_extraction_and_parsing():
    assert R.extract_answer("<think>x</think><answer> 3.25 </answer>") == "3.25"
    # the last answer wins; without tags the whole text is used
    assert R.extract_answer("<answer>1.00</answer> then <answer>4.10</answer>") == "4.10"
    assert R.extract_answer("  score 2.5 ") == "score 2.5"
    # the first number of the answer; decimals counted without trailing zeros, as the release's float
    assert R.parse_score("<answer>about 3.25 or 4</answer>") == R.ParsedScore(3.25, 2)
    assert R.parse_score("<answer>3.50</answer>") == R.ParsedScore(3.5, 1)
    assert R.parse_score("<answer>3.50</answer>", count_trailing_zeros=True) == R.ParsedScore(3.5, 2)
    assert R.parse_score("<answer>4</answer>") == R.ParsedScore(4.0, 0)
    assert R.parse_score("<answer>-1.125</answer>") == R.ParsedScore(-1.125, 3)
    assert R.parse_score("<answer>good</answer>") is None
    # chat-format completions (TRL's conversational format)
    assert R.completion_text([{"role": "assistant", "content": "<answer>2</answer>"}]) == "<answer>2</answer>"


# ----------------------------------------------------------------------------------------------
# regression
def test_regression_reward_by_hand():
    # 3.25 vs 3: d^2 = 0.0625, 2 sigma^2 = 0.5 -> exp(-0.125) = 0.8824969; two decimals, no penalty
    assert R.regression_reward("<answer>3.25</answer>", 3.0) == pytest.approx(0.8824969, abs=1e-7)
    # 3.5 vs 3: d^2 = 0.25 -> exp(-0.5) = 0.6065307; one decimal -> x 0.8 = 0.4852245
    assert R.regression_reward("<answer>3.5</answer>", 3.0) == pytest.approx(0.4852245, abs=1e-7)
    # "3.50" counts as one decimal, as in the release (float("3.50") prints as 3.5) ...
    assert R.regression_reward("<answer>3.50</answer>", 3.0) == pytest.approx(0.4852245, abs=1e-7)
    # ... unless trailing zeros are counted: exp(-0.5) = 0.6065307
    assert R.regression_reward("<answer>3.50</answer>", 3.0, count_trailing_zeros=True) == pytest.approx(
        0.6065307, abs=1e-7)
    # integer 4 vs 3: d^2 = 1 -> exp(-2) = 0.1353353; x 0.8 = 0.1082682
    assert R.regression_reward("<answer>4</answer>", 3.0) == pytest.approx(0.1082682, abs=1e-7)
    # exact but coarse: exp(0) x 0.8 = 0.8
    assert R.regression_reward("<answer>4.00</answer>", 4.0) == pytest.approx(0.8)
    # sigma = 1: 3.25 vs 3 -> exp(-0.0625 / 2) = exp(-0.03125) = 0.9692332
    assert R.regression_reward("<answer>3.25</answer>", 3.0, sigma=1.0) == pytest.approx(0.9692332, abs=1e-7)
    # penalty factor and required decimals are parameters: 3.5 vs 3 with factor 0.5 -> 0.3032653
    assert R.regression_reward("3.5", 3.0, decimal_penalty=0.5) == pytest.approx(0.3032653, abs=1e-7)
    assert R.regression_reward("3.5", 3.0, min_decimals=1) == pytest.approx(0.6065307, abs=1e-7)
    # nothing readable -> 0 (the release draws a random integer); a fixed substitute on request:
    # missing_value 3 vs mos 3 -> exp(0) x 0.8 (an integer) = 0.8
    assert R.regression_reward("<answer>great</answer>", 3.0) == 0.0
    assert R.regression_reward("<answer>great</answer>", 3.0, missing_value=3.0) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        R.bell(1.0, 1.0, sigma=0.0)


# ----------------------------------------------------------------------------------------------
# ranking
def test_group_statistics_are_unbiased_and_skip_missing():
    # [3, 2]: mean 2.5, var = (0.25 + 0.25) / (2 - 1) = 0.5
    assert R.group_statistics([3.0, 2.0]) == pytest.approx((2.5, 0.5))
    assert R.group_statistics([3.0, None, 2.0]) == pytest.approx((2.5, 0.5))
    assert R.group_statistics([4.0]) == (4.0, 0.0)
    assert R.group_statistics([None, None]) is None


def test_fidelity_by_hand():
    # p = 0.5, gt = 1: sqrt(0.5 + 1e-6) + sqrt(0 + 1e-6) = 0.7071075 + 0.001 = 0.7081075
    assert R.fidelity(0.5, 1.0) == pytest.approx(0.7081075, abs=1e-7)
    # p = 0.5, gt = 0.5: 2 sqrt(0.25 + 1e-6) = 1.000002 (a tie called a tie is the best case)
    assert R.fidelity(0.5, 0.5) == pytest.approx(1.000002, abs=1e-7)
    # p = 1, gt = 0: sqrt(1e-6) + sqrt(1e-6) = 0.002 (certain and wrong)
    assert R.fidelity(1.0, 0.0) == pytest.approx(0.002, abs=1e-9)


def test_ranking_rewards_by_hand():
    # video A: mos 3, predictions [3.0, 2.0] -> mean 2.5, var 0.5
    # video B: mos 2, predictions [2.5, 2.5] -> mean 2.5, var 0
    # video C: mos 3, predictions [3.5, 1.5] -> mean 2.5, var ((1)^2 + (1)^2) / 1 = 2
    preds = [[3.0, 2.0], [2.5, 2.5], [3.5, 1.5]]
    mos = [3.0, 2.0, 3.0]
    out = R.ranking_rewards(preds, mos)
    # rollout A1 (3.0) against B: x = (3.0 - 2.5) / sqrt(0.5 + 0 + 1e-6) = 0.7071061,
    #   p = Phi(0.7071061) = 0.7602497; A above B -> gt = 1
    #   r = sqrt(0.7602497 + 1e-6) + sqrt(0 + 1e-6) = 0.8719236 + 0.001 = 0.8729236
    x_ab = 0.5 / math.sqrt(0.5 + 1e-6)
    assert phi(x_ab) == pytest.approx(0.7602497, abs=1e-7)
    r_ab = 0.8729236
    # against C: x = 0.5 / sqrt(0.5 + 2 + 1e-6) = 0.3162277, p = Phi(0.3162277) = 0.6240852;
    #   equal MOS -> gt = 0.5
    #   r = sqrt(0.6240852 * 0.5 + 1e-6) + sqrt(0.3759148 * 0.5 + 1e-6) = 0.5586106 + 0.4335398 = 0.9921503
    r_ac = 0.9921503
    # mean over the two other videos: (0.8729236 + 0.9921503) / 2 = 0.9325370
    assert out[0][0] == pytest.approx((r_ab + r_ac) / 2, abs=1e-6)
    assert out[0][0] == pytest.approx(0.9325370, abs=1e-6)
    # rollout B1 (2.5) against A: x = (2.5 - 2.5) / ... = 0 -> p = 0.5; B below A -> gt = 0:
    #   r = sqrt(0 + 1e-6) + sqrt(0.5 + 1e-6) = 0.7081075; against C the same -> 0.7081075
    assert out[1][0] == pytest.approx(0.7081075, abs=1e-6)
    assert out[1][1] == pytest.approx(0.7081075, abs=1e-6)
    # within a video, the rollout on the right side of the others scores higher
    assert out[0][0] > out[0][1]


def test_ranking_edge_cases():
    # a single video: nothing to compare with -> 0 everywhere
    assert R.ranking_rewards([[3.0, 4.0]], [3.0]) == [[0.0, 0.0]]
    # an unreadable rollout gets 0 and is left out of its group's statistics:
    # A = [4.0, None] -> mean 4, var 0; B = [2.0, 2.0] -> mean 2, var 0
    # A1 vs B: x = 2 / sqrt(1e-6) = 2000 -> p = 1; gt = 1 -> sqrt(1 + 1e-6) + sqrt(1e-6) = 1.0010005
    out = R.ranking_rewards([[4.0, None], [2.0, 2.0]], [4.0, 2.0])
    assert out[0] == pytest.approx([1.0010005, 0.0], abs=1e-6)
    # a video without any readable rollout is not a comparison: B is left with nothing -> 0
    out = R.ranking_rewards([[None, None], [2.0, 3.0]], [4.0, 2.0])
    assert out == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError):
        R.ranking_rewards([[1.0]], [1.0, 2.0])


# ----------------------------------------------------------------------------------------------
# format
@pytest.mark.parametrize("text,expected", [
    ("<think>sharp, steady</think><answer>4.25</answer>", 1.0),
    ("<think>line 1\nline 2</think>\n<answer>4.25</answer>", 1.0),    # newlines inside and between
    ("<think></think><answer></answer>", 1.0),                          # empty parts still match
    (" <think>a</think><answer>4</answer>", 0.0),                       # leading space: not the whole output
    ("<think>a</think><answer>4</answer> done", 0.0),                   # trailing text
    ("<answer>4</answer>", 0.0),                                        # no reasoning
    ("<answer>4</answer><think>a</think>", 0.0),                        # wrong order
    ("<think>a</think>text<answer>4</answer>", 0.0),                    # text between
])
def test_format_reward(text, expected):
    assert R.format_reward(text) == expected


# ----------------------------------------------------------------------------------------------
# temporal consistency
def test_temporal_bonus_by_hand():
    # ranking: original mean (0.9 + 0.4 + 0.6 + 0.2) / 4 = 0.525 >= perturbed 0.5
    #   -> +0.3 to the original rollouts whose ranking reward exceeds 0.5: (0, 0) and (1, 0)
    # regression: original mean (0.95 + 0.5 + 0.92 + 0.1) / 4 = 0.6175 < perturbed 0.7 -> nothing
    orig = {"ranking": [[0.9, 0.4], [0.6, 0.2]], "regression": [[0.95, 0.5], [0.92, 0.1]]}
    pert = {"ranking": [[0.5, 0.5], [0.5, 0.5]], "regression": [[0.7, 0.7], [0.7, 0.7]]}
    np.testing.assert_allclose(R.temporal_bonus(orig, pert), [[0.3, 0.0], [0.3, 0.0]])
    # regression now also passes (mean 0.6175 >= 0.6): rewards above 0.9 -> (0, 0) and (1, 0) get +0.3 more
    pert["regression"] = [[0.6, 0.6], [0.6, 0.6]]
    np.testing.assert_allclose(R.temporal_bonus(orig, pert), [[0.6, 0.0], [0.6, 0.0]])
    # equal means pass (>=); a reward exactly at the threshold does not (>)
    eq = {"ranking": [[0.5, 0.7]], "regression": [[0.9, 0.95]]}
    np.testing.assert_allclose(R.temporal_bonus(eq, eq), [[0.0, 0.6]])
    # bonus and thresholds are parameters
    np.testing.assert_allclose(R.temporal_bonus(eq, eq, thresholds={"ranking": 0.4}, bonus=1.0), [[1.0, 1.0]])


def test_temporal_bonus_per_video_scope():
    # video 0: original mean 0.65 >= perturbed 0.5 -> bonus for 0.9 (> 0.5)
    # video 1: original mean 0.4 < perturbed 0.5 -> none; with scope "batch" the batch means
    #   (0.525 vs 0.5) pass and video 1's 0.6 gets it too
    orig = {"ranking": [[0.9, 0.4], [0.6, 0.2]]}
    pert = {"ranking": [[0.5, 0.5], [0.5, 0.5]]}
    th = {"ranking": 0.5}
    np.testing.assert_allclose(R.temporal_bonus(orig, pert, th, scope="video"), [[0.3, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(R.temporal_bonus(orig, pert, th, scope="batch"), [[0.3, 0.0], [0.3, 0.0]])
    with pytest.raises(KeyError):
        R.temporal_bonus(orig, pert)          # regression missing
    with pytest.raises(ValueError):
        R.temporal_bonus(orig, pert, th, scope="clip")


# ----------------------------------------------------------------------------------------------
# combination
def test_combined_rewards_by_hand():
    good = "<think>clear</think><answer>3.25</answer>"
    coarse = "<think>ok</think><answer>2</answer>"
    low = "<think>blurry</think><answer>1.75</answer>"
    bad = "no tags 1.5"
    samples = [{"mos": 3.0}, {"mos": 2.0}]
    texts = [[good, coarse], [low, bad]]
    out = R.VQAThinkerRewards(R.RewardConfig(temporal=False))(samples, texts)
    # regression: 3.25 vs 3 -> 0.8824969; 2 vs 3 -> exp(-2) x 0.8 = 0.1082682;
    #   1.75 vs 2 -> exp(-0.125) = 0.8824969; 1.5 vs 2 (one decimal) -> exp(-0.5) x 0.8 = 0.4852245
    np.testing.assert_allclose(out.components["regression"], [[0.8824969, 0.1082682], [0.8824969, 0.4852245]],
                               atol=1e-7)
    np.testing.assert_allclose(out.components["format"], [[1, 1], [1, 0]])
    # ranking: A = [3.25, 2] -> mean 2.625, var 0.78125; B = [1.75, 1.5] -> mean 1.625, var 0.03125
    #   A1: x = (3.25 - 1.625) / sqrt(0.8125 + 1e-6) = 1.8027744, p = 0.9642882, gt = 1
    #       r = sqrt(0.9642882 + 1e-6) + 0.001 = 0.9819823 + 0.001 = 0.9829823
    x = (3.25 - 1.625) / math.sqrt(0.78125 + 0.03125 + 1e-6)
    p = phi(x)
    assert p == pytest.approx(0.9642882, abs=1e-6)
    assert out.components["ranking"][0, 0] == pytest.approx(math.sqrt(p + 1e-6) + 1e-3, abs=1e-7)
    assert out.components["ranking"][0, 0] == pytest.approx(0.9829823, abs=1e-6)
    assert "temporal" not in out.components
    # the total is the sum of the components
    np.testing.assert_allclose(out.total, sum(out.components.values()))
    assert out.means()["reward/total"] == pytest.approx(float(out.total.mean()))


def test_combined_rewards_with_temporal_and_weights():
    good = "<think>a</think><answer>3.10</answer>"       # 3.1: one decimal after stripping the zero
    great = "<think>a</think><answer>3.05</answer>"
    samples = [{"mos": 3.0}, {"mos": 1.0}]
    texts = [[great, good], ["<think>a</think><answer>1.05</answer>"] * 2]
    perturbed = [["<think>a</think><answer>4.05</answer>"] * 2, ["<think>a</think><answer>4.05</answer>"] * 2]
    out = R.VQAThinkerRewards()(samples, texts, perturbed)
    # original regression: 3.05 vs 3 -> exp(-0.0025 / 0.5) = exp(-0.005) = 0.9950125;
    #   3.10 -> "3.1", one decimal: exp(-0.02) x 0.8 = 0.7841589; 1.05 vs 1 -> 0.9950125 (twice)
    #   mean 0.9422991; perturbed: 4.05 vs 3 -> exp(-2.205) = 0.1102; 4.05 vs 1 -> ~0: mean < original
    #   -> +0.3 to rollouts with regression > 0.9: (0, 0), (1, 0), (1, 1)
    # original ranking: video 0 mean 3.075 > video 1's 1.05, so every rollout is near 1 (> 0.5);
    #   perturbed: both groups predict 4.05 -> x = 0, p = 0.5 -> 0.7081075 each: original mean is
    #   higher -> +0.3 to every original rollout
    np.testing.assert_allclose(out.components["regression"][0], [0.9950125, 0.7841589], atol=1e-7)
    np.testing.assert_allclose(out.perturbed["ranking"], np.full((2, 2), 0.7081075), atol=1e-6)
    np.testing.assert_allclose(out.components["temporal"], [[0.6, 0.3], [0.6, 0.6]])
    # weights scale each component in the sum
    cfg = R.RewardConfig(weights={"ranking": 0.0, "regression": 2.0, "format": 1.0, "temporal": 0.0})
    w = R.VQAThinkerRewards(cfg)(samples, texts, perturbed)
    np.testing.assert_allclose(w.total, 2 * w.components["regression"] + w.components["format"])
    # the temporal reward can be switched off
    assert "temporal" not in R.VQAThinkerRewards(R.RewardConfig(temporal=False))(samples, texts, perturbed).components
    with pytest.raises(ValueError):
        R.VQAThinkerRewards()(samples, [[good], [good, good]])
    with pytest.raises(KeyError):
        R.VQAThinkerRewards()([{"score": 1}], [[good]])


def test_trl_signature_groups_by_video():
    rank, reg, fmt = R.trl_reward_functions()
    # TRL passes one entry per completion; the groups are found from the 'path' column
    completions = [[{"role": "assistant", "content": t}] for t in
                   ["<think>a</think><answer>3.0</answer>", "<think>a</think><answer>2.0</answer>",
                    "<answer>2.5</answer>", "<answer>2.5</answer>"]]
    cols = {"path": ["a.mp4", "a.mp4", "b.mp4", "b.mp4"], "mos": [3.0, 3.0, 2.0, 2.0], "trainer_state": None}
    r = rank(prompts=[None] * 4, completions=completions, **cols)
    # A = [3, 2] (mean 2.5, var 0.5), B = [2.5, 2.5] (var 0): A1 vs B as in the hand-worked test: 0.8729236;
    #   B's rollouts: p = 0.5, gt = 0 -> 0.7081075
    assert r[0] == pytest.approx(0.8729236, abs=1e-6)
    assert r[2] == pytest.approx(0.7081075, abs=1e-6) and r[3] == pytest.approx(0.7081075, abs=1e-6)
    # 3.0 vs 3 -> "3", 0 decimals: exp(0) x 0.8
    assert reg(prompts=None, completions=completions, **cols)[0] == pytest.approx(0.8)
    assert fmt(prompts=None, completions=completions, **cols) == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(KeyError):
        rank(prompts=None, completions=completions, mos=[1.0] * 4)
