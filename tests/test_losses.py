"""Losses and evaluation statistics of the head recipe, against numbers worked out by hand."""
import math

import numpy as np
import pytest
import torch

from vqametric.train.fast import losses as L
from vqametric.train import metrics as M

t = torch.tensor


def test_bell_loss_by_hand():
    # 1 - exp(-e^2 / (2 * 0.25)): e = 0 -> 0, e = 0.5 -> 1 - e^-0.5, e = 1 -> 1 - e^-2
    got = L.bell_loss(t([3.0, 3.5, 4.0]), t([3.0, 3.0, 3.0]), sigma=0.5)
    assert got.item() == pytest.approx((0 + (1 - math.exp(-0.5)) + (1 - math.exp(-2))) / 3, abs=1e-6)
    assert got.item() == pytest.approx(0.4193780, abs=1e-6)
    assert L.bell_loss(t([1.0]), t([5.0])).item() == pytest.approx(1.0, abs=1e-6)   # bounded


def test_fidelity_by_hand():
    # equal scores: p_hat = 0.5; p = 1 -> 1 - sqrt(0.5); p = 0.5 -> 1 - 2 sqrt(0.25) = 0
    assert L.fidelity_loss(t([3.0]), t([3.0]), 1.0).item() == pytest.approx(1 - math.sqrt(0.5), abs=1e-5)
    assert L.fidelity_loss(t([3.0]), t([3.0]), 0.5).item() == pytest.approx(0.0, abs=1e-5)
    # s_i - s_j = sqrt(2) * sigma -> p_hat = Phi(1) = 0.8413447; p = 1 -> 1 - sqrt(0.8413447)
    d = math.sqrt(2) * 0.25
    assert L.preference_probability(t([3.0 + d]), t([3.0]), 0.25).item() == pytest.approx(0.8413447, abs=1e-6)
    assert L.ordered_fidelity_loss(t([3.0 + d]), t([3.0]), 0.25).item() == pytest.approx(0.0827515, abs=1e-5)


def test_batch_fidelity_is_zero_when_predictions_equal_targets_and_penalises_swaps():
    y = t([1.5, 2.0, 3.2, 4.4])
    assert L.batch_fidelity_loss(y.clone(), y).item() == pytest.approx(0.0, abs=1e-5)
    swapped = t([2.0, 1.5, 3.2, 4.4])
    assert L.batch_fidelity_loss(swapped, y).item() > 0.01
    assert L.batch_fidelity_loss(t([3.0]), t([2.0])).item() == 0.0


def test_margin_loss_by_hand():
    # relu(0.25 - 0.1) = 0.15, relu(0.25 - 0.5) = 0, relu(0.25 + 0.2) = 0.45 -> mean 0.2
    got = L.margin_loss(t([3.0, 3.0, 3.0]), t([2.9, 2.5, 3.2]), margin=0.25)
    assert got.item() == pytest.approx(0.2, abs=1e-6)


def test_attribution_and_severity_by_hand():
    assert L.attribution_loss(torch.zeros(2, 10), t([0, 3])).item() == pytest.approx(math.log(10), abs=1e-6)
    assert L.attribution_loss(torch.zeros(2, 10), t([-100, -100])).item() == 0.0
    sev = torch.full((2, 9), 0.5)
    assert L.severity_loss(sev, torch.zeros(2, 9)).item() == pytest.approx(math.log(2), abs=1e-6)
    assert L.severity_loss(sev, torch.zeros(2, 9), mask=t([False, False])).item() == 0.0


def test_losses_have_finite_gradients_at_the_extremes():
    s = t([5.0, 1.0, 3.0], requires_grad=True)
    loss = L.ordered_fidelity_loss(s[:1], s[1:2]) + L.ordered_fidelity_loss(s[1:2], s[:1]) + \
        L.batch_fidelity_loss(s, t([5.0, 1.0, 3.0])) + L.bell_loss(s, t([1.0, 5.0, 3.0]))
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_ranks_and_correlations_by_hand():
    np.testing.assert_array_equal(M.rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    # x = [1,2,3], y = [1,2,4]: cov 3, var 2 and 42/9 -> 3 / sqrt(2 * 42 / 9)
    assert M.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * 42 / 9), abs=1e-12)
    assert M.srcc([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert M.srcc([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert M.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x = [1,2,3], y = [1,1,2]: S = 2, 3 untied x pairs, 2 untied y pairs -> 2 / sqrt(6)
    assert M.kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))
    assert M.kendall_tau([1, 2, 3], [2, 2, 2]) == 0.0


def test_logistic_fit_recovers_a_logistic_relation():
    pytest.importorskip("scipy")
    x = np.linspace(-3, 3, 60)
    y = M.logistic4(x, 4.5, 1.2, 0.3, 0.4)
    assert M.pearson(x, y) < 0.95
    assert M.plcc_logistic(x, y) == pytest.approx(1.0, abs=1e-6)
    rep = M.correlation_report(x, y)
    assert rep["srcc"] == pytest.approx(1.0) and rep["n"] == 60
