"""Analytic Score Optimization: the closed form by hand, against brute-force optimisation, and a toy run."""
import copy
import math

import pytest
import torch

from vqametric.train.reasoning import aso as A

t = torch.tensor


def test_ordinal_rewards_by_hand():
    # y = 3: -|s - 3| for s = 1..5 -> [-2, -1, 0, -1, -2]; y = 1.5 -> [-0.5, -0.5, -1.5, -2.5, -3.5]
    assert A.ordinal_rewards(t([3.0, 1.5])).tolist() == [[-2, -1, 0, -1, -2], [-0.5, -0.5, -1.5, -2.5, -3.5]]
    assert A.ordinal_rewards(t(4.0), kind="squared").tolist() == [-9, -4, -1, 0, -1]
    custom = A.ordinal_rewards(t(2.0), kind=lambda s, y: (s == y).float())      # exact-match reward
    assert custom.tolist() == [0, 1, 0, 0, 0]
    assert A.ordinal_rewards(t(2.0), levels=(0, 1, 2)).tolist() == [-2, -1, 0]
    with pytest.raises(ValueError):
        A.ordinal_rewards(t(2.0), kind="hinge")


def test_closed_form_by_hand():
    # uniform reference, y = 3, beta = 1: pi* proportional to exp(-|s - 3|) = [e^-2, e^-1, 1, e^-1, e^-2];
    # Z = 1 + 2 e^-1 + 2 e^-2 = 1 + 0.7357589 + 0.2706706 = 2.0064295
    # pi*(3) = 1 / 2.0064295 = 0.4983978, pi*(2) = e^-1 / Z = 0.1833503, pi*(1) = e^-2 / Z = 0.0674508
    r = A.ordinal_rewards(t(3.0))
    target = A.closed_form_target(torch.zeros(5), r, beta=1.0)
    assert target.tolist() == pytest.approx([0.0674508, 0.1833503, 0.4983978, 0.1833503, 0.0674508], abs=1e-6)
    # optimal value beta log Z with the uniform reference: Z' = Z / 5 -> log(0.4012859) = -0.9130812
    assert A.optimal_value(torch.zeros(5), r, beta=1.0).item() == pytest.approx(-0.9130812, abs=1e-6)
    # reference [0.1, 0.2, 0.4, 0.2, 0.1], y = 5, beta = 0.5: weights exp(2 r) = [e^-8, e^-6, e^-4, e^-2, 1]
    # unnormalised: [0.1 e^-8, 0.2 e^-6, 0.4 e^-4, 0.2 e^-2, 0.1]
    #             = [0.0000335, 0.0004958, 0.0073263, 0.0270671, 0.1]; Z = 0.1349226
    # pi*(5) = 0.1 / 0.1349226 = 0.7411656, pi*(4) = 0.0270671 / 0.1349226 = 0.2006117
    ref = torch.log(t([0.1, 0.2, 0.4, 0.2, 0.1]))
    target = A.closed_form_target(ref, A.ordinal_rewards(t(5.0)), beta=0.5)
    assert target[4].item() == pytest.approx(0.7411656, abs=1e-6)
    assert target[3].item() == pytest.approx(0.2006117, abs=1e-6)
    assert target.sum().item() == pytest.approx(1.0, abs=1e-6)
    # beta -> large: the target stays at the reference; beta -> small: all mass on the best level
    assert A.closed_form_target(ref, A.ordinal_rewards(t(5.0)), beta=1e4).tolist() == pytest.approx(
        [0.1, 0.2, 0.4, 0.2, 0.1], abs=1e-3)
    assert A.closed_form_target(ref, A.ordinal_rewards(t(5.0)), beta=1e-3)[4].item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        A.closed_form_target(ref, A.ordinal_rewards(t(5.0)), beta=0.0)


def _brute_force(ref_logits, rewards, beta, epsilon=0.0, steps=100):
    """Maximise E_pi[r] - beta KL(pi || pi_ref) over free logits with torch's L-BFGS."""
    theta = torch.zeros_like(rewards, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    ref64, r64 = ref_logits.double(), rewards.double()

    def closure():
        opt.zero_grad()
        loss = -A.objective(theta, ref64, r64, beta, epsilon).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(theta.detach(), -1)


def _simplex_brute_force(ref_probs, rewards, beta):
    """Maximise the same objective directly over the probability simplex with scipy's SLSQP
    (bounds 0..1, sum 1): no logit parametrisation, nothing assumed about the form of the answer."""
    np = pytest.importorskip("numpy")
    optimize = pytest.importorskip("scipy.optimize")
    ref, r = ref_probs.numpy(), rewards.numpy()

    def negative_objective(p):
        p = np.clip(p, 0.0, 1.0)
        kl = np.sum(np.where(p > 0, p * (np.log(np.maximum(p, 1e-300)) - np.log(ref)), 0.0))
        return -(p @ r - beta * kl)

    res = optimize.minimize(negative_objective, np.full(len(r), 1.0 / len(r)), method="SLSQP",
                            bounds=[(0.0, 1.0)] * len(r), constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                            options={"ftol": 1e-14, "maxiter": 1000})
    return torch.from_numpy(res.x)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("kind", ["abs", "squared"])
def test_closed_form_matches_brute_force_over_the_simplex(seed, beta, kind):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(4, 5, generator=g, dtype=torch.float64) * 1.5          # random reference logits
    y = torch.rand(4, generator=g, dtype=torch.float64) * 4 + 1               # fractional labels in [1, 5]
    r = A.ordinal_rewards(y, kind=kind)
    closed = A.closed_form_target(ref, r, beta)
    brute = torch.stack([_simplex_brute_force(torch.softmax(ref[i], -1), r[i], beta) for i in range(4)])
    torch.testing.assert_close(brute, closed, atol=1e-5, rtol=0)
    # the objective at the closed form is the analytic optimum beta log Z and no lower than the search's
    at_closed = A.objective(torch.log(closed), ref, r, beta)
    torch.testing.assert_close(at_closed, A.optimal_value(ref, r, beta), atol=1e-9, rtol=0)
    assert (at_closed >= A.objective(torch.log(brute.clamp_min(1e-300)), ref, r, beta) - 1e-9).all()


def test_closed_form_matches_brute_force_over_logits():
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(4, 5, generator=g, dtype=torch.float64) * 1.5
    r = A.ordinal_rewards(torch.rand(4, generator=g, dtype=torch.float64) * 4 + 1)
    brute = _brute_force(ref, r, beta=1.0)
    torch.testing.assert_close(brute, A.closed_form_target(ref, r, 1.0), atol=1e-6, rtol=0)


def test_reference_zero_is_never_recovered_without_a_floor():
    # the reference gives level 5 no mass; the label is 5
    ref_p = t([0.3, 0.3, 0.2, 0.2, 0.0])
    r = A.ordinal_rewards(t(5.0))
    target = A.closed_form_target(torch.log(ref_p), r, beta=0.1)
    assert target[4].item() == 0.0                   # whatever beta, pi*(5) = 0 * exp(...) / Z = 0
    assert target[3].item() > 0.99                    # all the mass goes to the best level it can reach
    # the objective is -inf for any policy that puts mass on level 5 (KL to a zero)
    assert A.objective(torch.zeros(5), torch.log(ref_p), r, 0.1).item() == -math.inf
    # the floor: (1 - 0.05) * pi_ref + 0.05 / 5 -> level 5 gets 0.01 in the reference ...
    floored = A.floor_reference(ref_p, 0.05)
    assert floored.tolist() == pytest.approx([0.295, 0.295, 0.2, 0.2, 0.01])
    # ... and pi*(5) = 0.01 e^0 / (0.295 e^-40 + 0.295 e^-30 + 0.2 e^-20 + 0.2 e^-10 + 0.01) with beta = 0.1:
    #   = 0.01 / (0.01 + 0.2 * 4.54e-5 + ...) = 0.01 / 0.0100091 = 0.9990928
    target = A.closed_form_target(torch.log(ref_p), r, beta=0.1, epsilon=0.05)
    assert target[4].item() == pytest.approx(0.9990928, abs=1e-5)
    # and it is the brute-force optimum against the floored reference
    brute = _simplex_brute_force(A.floor_reference(ref_p.double(), 0.05), r.double(), 0.1)
    torch.testing.assert_close(brute.float(), target, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        A.floor_reference(ref_p, 1.5)


def test_loss_expected_score_and_kl_by_hand():
    # uniform logits: expected score (1 + 2 + 3 + 4 + 5) / 5 = 3
    assert A.expected_score(torch.zeros(2, 5)).tolist() == [3.0, 3.0]
    # KL(target || uniform) = sum t log(5 t); the target [0.5, 0.5, 0, 0, 0] -> log(2.5) = 0.9162907
    target = t([[0.5, 0.5, 0.0, 0.0, 0.0]])
    assert A.aso_loss(torch.zeros(1, 5), target).item() == pytest.approx(0.9162907, abs=1e-6)
    # cross-entropy = KL + entropy(target) = 0.9162907 + log 2 = log 5 = 1.6094379
    assert A.aso_loss(torch.zeros(1, 5), target, kind="ce").item() == pytest.approx(1.6094379, abs=1e-6)
    # the loss is 0 at the target
    assert A.aso_loss(torch.log(t([[0.1, 0.2, 0.3, 0.2, 0.2]])), t([[0.1, 0.2, 0.3, 0.2, 0.2]])).item() == \
        pytest.approx(0.0, abs=1e-6)
    # masked entries do not count: only the first row (0.9162907)
    logits = torch.zeros(2, 5)
    targets = torch.cat([target, t([[0, 0, 0, 0, 1.0]])])
    assert A.aso_loss(logits, targets, mask=t([True, False])).item() == pytest.approx(0.9162907, abs=1e-6)
    # KL(p || q) with p = [0.5, 0.5], q = [0.25, 0.75]: 0.5 log 2 + 0.5 log(2/3) = 0.1438410
    p, q = torch.log(t([0.5, 0.5])), torch.log(t([0.25, 0.75]))
    assert A.kl_divergence(p, q).item() == pytest.approx(0.1438410, abs=1e-6)
    with pytest.raises(ValueError):
        A.aso_loss(torch.zeros(1, 5), torch.zeros(1, 4))


# ----------------------------------------------------------------------------------------------
# toy run
class ToyScorer(torch.nn.Module):
    """Features -> (D, K) level logits; the reference is a frozen copy of the initial policy, which
    prefers level 3 everywhere (a collapsed supervised model)."""

    def __init__(self, in_dim, dims=5, levels=5):
        super().__init__()
        self.dims, self.levels = dims, levels
        self.net = torch.nn.Linear(in_dim, dims * levels)
        with torch.no_grad():
            self.net.weight.mul_(0.05)
            self.net.bias.copy_(t([-1.0, 0.0, 1.5, 0.0, -1.0]).repeat(dims))
        self.ref = copy.deepcopy(self.net).requires_grad_(False)

    def level_logits(self, x):
        return self.net(x).view(-1, self.dims, self.levels)

    def reference_level_logits(self, x):
        return self.ref(x).view(-1, self.dims, self.levels)

    def parameters(self, recurse=True):
        return self.net.parameters(recurse)


def test_toy_aso_run_moves_expected_score_toward_labels_with_bounded_kl():
    torch.manual_seed(0)
    n, dims = 64, 5
    labels = torch.randint(1, 6, (n, dims)).float()
    labels[0, 2] = float("nan")                         # a dimension without a rating
    feats = torch.cat([torch.nn.functional.one_hot(torch.nan_to_num(labels, 3.0).long() - 1, 5).flatten(1).float(),
                       0.1 * torch.randn(n, 6)], dim=1)
    scorer = ToyScorer(feats.shape[1], dims)
    trainer = A.ASOTrainer(scorer, torch.optim.Adam(scorer.parameters(), lr=0.05), A.ASOConfig(beta=0.5))
    first = trainer.step(feats, labels)
    for _ in range(150):
        last = trainer.step(feats, labels)
    mask = ~torch.isnan(labels)
    with torch.no_grad():
        target, _, _ = trainer.targets(feats, labels)
        target_mae = (((target * torch.arange(1.0, 6.0)).sum(-1) - torch.nan_to_num(labels)).abs()[mask]).mean()
    # the expected score moved toward the labels: the error fell to less than half of where it
    # started (the reference sits at 3) and close to what the closed-form target itself reaches
    assert last["aso/mae"] < 0.5 * first["aso/mae"], (first, last)
    assert last["aso/mae"] == pytest.approx(float(target_mae), abs=0.05)
    # the KL to the reference stays bounded by the target's own KL to the reference (plus slack)
    assert last["aso/kl_policy_ref"] <= 1.1 * last["aso/kl_target_ref"] + 0.05, last
    assert last["aso/loss"] < 0.05 * first["aso/loss"]


def test_sft_stage_needs_a_rationale_loss():
    scorer = ToyScorer(4)
    trainer = A.ASOTrainer(scorer, torch.optim.SGD(scorer.parameters(), lr=0.1))
    with pytest.raises(AttributeError):
        trainer.sft_step(torch.zeros(2, 4))

    class WithText(ToyScorer):
        def rationale_nll(self, x):
            return (self.net(x) ** 2).mean()

    s = WithText(4)
    tr = A.ASOTrainer(s, torch.optim.SGD(s.parameters(), lr=0.1), A.ASOConfig(sft_weight=0.5))
    before = tr.sft_step(torch.ones(2, 4))["sft/nll"]
    assert tr.sft_step(torch.ones(2, 4))["sft/nll"] < before
    assert "sft/nll" in tr.step(torch.ones(2, 4), torch.full((2, 5), 4.0))
    with pytest.raises(ValueError):
        tr.step(torch.ones(2, 4), torch.full((2, 3), 4.0))
