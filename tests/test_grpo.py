"""GRPO core: the maths by hand, the trainer over the Policy protocol, and a toy run that learns."""
import math

import numpy as np
import pytest
import torch

from vqametric.train.reasoning import grpo as G
from vqametric.train.reasoning import rewards as R
from vqametric.train.fast.distortions import BLACK, temporal_perturbation_indices

t = torch.tensor


# ----------------------------------------------------------------------------------------------
# the maths
def test_group_advantages_by_hand():
    # rewards 1, 2, 3, 4: mean 2.5, unbiased std sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3) = 1.2909944
    # (r - 2.5) / (1.2909944 + 1e-4) = [-1.1618050, -0.3872683, 0.3872683, 1.1618050]
    adv = G.group_advantages(t([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]]))
    assert adv[0].tolist() == pytest.approx([-1.1618050, -0.3872683, 0.3872683, 1.1618050], abs=1e-6)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]          # equal rewards: no signal
    assert G.group_advantages(t([[1.0, 3.0]]), scale=False).tolist() == [[-1.0, 1.0]]
    with pytest.raises(ValueError):
        G.group_advantages(t([[1.0], [2.0]]))


def test_k3_kl_by_hand():
    # logp = log 0.5, ref = log 0.25: d = ref - logp = log 0.5 = -0.6931472
    # exp(d) - d - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
    assert G.k3_kl(torch.log(t(0.5)), torch.log(t(0.25))).item() == pytest.approx(0.1931472, abs=1e-6)
    assert G.k3_kl(t(-1.0), t(-1.0)).item() == 0.0
    assert (G.k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_policy_loss_by_hand():
    logp = torch.log(t([[0.5, 0.5, 0.9], [0.25, 0.9, 0.9]])).requires_grad_()
    ref = torch.log(t([[0.25, 0.5, 0.1], [0.25, 0.1, 0.1]]))
    mask = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = t([1.0, -2.0])
    # on-policy (ratio 1): per token -A + beta k3
    # row 0: tokens k3 = 0.1931472 (log .5 vs log .25) and 0 -> mean(-1 + 0.04 * 0.1931472, -1) = -0.9961371
    # row 1: one token, k3(log .25, log .25) = 0 -> 2
    # mean over rows: (-0.9961371 + 2) / 2 = 0.5019315
    loss, stats = G.policy_loss(logp, adv, mask, ref_logp=ref, beta=0.04)
    assert loss.item() == pytest.approx(0.5019315, abs=1e-6)
    # logged KL: row means (0.1931472 / 2, 0) -> 0.0482868
    assert stats["kl"] == pytest.approx(0.0482868, abs=1e-6)
    assert stats["clip_ratio"] == 0.0
    # gradient: -A / (tokens in row) / rows + beta * dk3/dlogp; masked tokens get none
    loss.backward()
    g = logp.grad
    # d k3 / d logp = -exp(ref - logp) + 1: at (0, 0) -0.5 + 1 = 0.5 -> (-1 + 0.04 * 0.5) / 2 / 2 = -0.245
    assert g[0, 0].item() == pytest.approx(-0.245, abs=1e-6)
    assert g[0, 2].item() == 0.0 and g[1, 1].item() == 0.0
    assert g[1, 0].item() == pytest.approx(2.0 / 1 / 2, abs=1e-6)
    # token aggregation: all three valid tokens weigh the same: (-1 + 0.0077259 - 1 + 2) / 3 = 0.0025753
    loss_tok, _ = G.policy_loss(logp, adv, mask, ref_logp=ref, beta=0.04, aggregation="token")
    assert loss_tok.item() == pytest.approx(0.0025753, abs=1e-6)
    # no reference or beta 0: no KL
    assert G.policy_loss(logp, adv, mask)[0].item() == pytest.approx((-1 + 2) / 2)
    with pytest.raises(ValueError):
        G.policy_loss(logp, adv, mask[:, :2])
    with pytest.raises(ValueError):
        G.policy_loss(logp, adv, mask, aggregation="batch")


def test_clipping_by_hand():
    mask = torch.ones(2, 1)
    old = torch.zeros(2, 1)
    # A = +1, ratio 1.5: min(1.5, clip(1.5, 0.8, 1.2) = 1.2) = 1.2 -> loss -1.2
    # A = -1, ratio 0.5: min(-0.5, -clip(0.5) = -0.8) = -0.8 -> loss 0.8; mean (-1.2 + 0.8) / 2 = -0.2
    logp = torch.log(t([[1.5], [0.5]])).requires_grad_()
    loss, stats = G.policy_loss(logp, t([1.0, -1.0]), mask, old_logp=old, clip_epsilon=0.2)
    assert loss.item() == pytest.approx(-0.2, abs=1e-6)
    assert stats["clip_ratio"] == 1.0
    loss.backward()
    assert logp.grad.abs().sum().item() == 0.0              # both clipped: no gradient
    # an asymmetric upper bound (clip-higher): eps_high 0.6 -> A = +1 at ratio 1.5 is not clipped:
    # (-1.5 + 0.8) / 2 = -0.35
    loss, stats = G.policy_loss(logp, t([1.0, -1.0]), mask, old_logp=old, clip_epsilon=0.2, clip_epsilon_high=0.6)
    assert loss.item() == pytest.approx(-0.35, abs=1e-6) and stats["clip_ratio"] == 0.5


def test_helpers():
    # EOS id 2: mask up to and including the first EOS; no EOS: everything
    ids = t([[5, 6, 2, 0, 0], [5, 2, 2, 0, 0], [5, 6, 7, 8, 9]])
    assert G.completion_mask_from_eos(ids, 2).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert G.completion_mask_from_eos(ids, [7, 2]).tolist()[2] == [1, 1, 1, 0, 0]
    # log-probs at the ids, temperature 2 halves the logits: log softmax([0, ln 4] / 2) at 1 = ln(2 / 3)
    logits = torch.log(t([[[1.0, 4.0]]]))
    assert G.token_log_probs(logits, t([[1]])).item() == pytest.approx(math.log(0.8), abs=1e-6)
    assert G.token_log_probs(logits, t([[1]]), temperature=2.0).item() == pytest.approx(math.log(2 / 3), abs=1e-6)


def test_perturb_frame_indices_uses_the_shared_perturbations():
    frames = np.array([10, 20, 30, 40, 50, 60, 70, 80])
    rng = np.random.default_rng(0)
    assert G.perturb_frame_indices(frames, rng, "reverse").tolist() == frames[::-1].tolist()
    # the same transform as distortions.temporal_perturbation_indices with the seed drawn from rng
    for kind in ("shuffle", "local_shuffle", "jitter", "duplicate", "black"):
        r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
        got = G.perturb_frame_indices(frames, r1, kind)
        idx = temporal_perturbation_indices(kind, len(frames), seed=int(r2.integers(0, 2 ** 31 - 1)))
        assert got.tolist() == np.where(idx == BLACK, BLACK, frames[np.maximum(idx, 0)]).tolist()
    blacks = G.perturb_frame_indices(frames, rng, "black")
    assert 1 <= (blacks == BLACK).sum() <= 3
    kinds = {tuple(G.perturb_frame_indices(frames, rng)) for _ in range(30)}     # random kinds
    assert len(kinds) > 5


# ----------------------------------------------------------------------------------------------
# the trainer over a minimal policy
class BanditPolicy(torch.nn.Module):
    """A categorical policy over answer strings per prompt id: the smallest Policy."""

    def __init__(self, answers, prompts=5):
        super().__init__()
        self.answers = answers
        self.logits = torch.nn.Parameter(torch.zeros(prompts, len(answers)))
        self.ref = torch.zeros(prompts, len(answers))
        self.calls = []

    def generate(self, prompts, num_generations, temperature=1.0):
        self.calls.append(list(prompts))
        p = [q for q in prompts for _ in range(num_generations)]
        probs = torch.softmax(self.logits.detach()[p] / temperature, -1)
        ids = torch.multinomial(probs, 1)
        texts = [self.answers[i] for i in ids[:, 0].tolist()]
        return G.Rollouts(ids, torch.ones_like(ids, dtype=torch.float32), texts, num_generations,
                          {"prompts": torch.tensor(p), "temperature": temperature})

    def _lp(self, logits, rollouts, rows):
        s = rollouts.state
        lp = torch.log_softmax(logits[s["prompts"][rows]] / s["temperature"], -1)
        return lp.gather(-1, rollouts.completion_ids[rows])

    def log_probs(self, rollouts, rows):
        return self._lp(self.logits, rollouts, rows)

    def ref_log_probs(self, rollouts, rows):
        return self._lp(self.ref, rollouts, rows)


ANSWERS = [f"<think>x</think><answer>{v}</answer>" for v in ("1.25", "2.25", "3.25", "4.25", "4.75")] + ["no idea"]


def test_the_bandit_is_a_policy():
    assert isinstance(BanditPolicy(ANSWERS), G.Policy)


def test_micro_batches_give_the_same_update():
    def run(micro, iterations):
        torch.manual_seed(0)
        pol = BanditPolicy(ANSWERS)
        tr = G.GRPOTrainer(pol, R.VQAThinkerRewards(R.RewardConfig(temporal=False)),
                           torch.optim.SGD(pol.parameters(), lr=0.5),
                           G.GRPOConfig(micro_batch_size=micro, num_iterations=iterations, max_grad_norm=None))
        res = tr.step([{"prompt": q, "mos": 1.0 + q} for q in range(5)])
        return pol.logits.detach().clone(), res

    full, res = run(None, 1)
    small, _ = run(3, 1)
    torch.testing.assert_close(small, full)
    assert not torch.equal(full, torch.zeros_like(full))
    assert res.stats["clip_ratio"] == 0.0 and res.stats["kl"] == 0.0        # on-policy, at the reference
    # several updates per batch: the ratio moves away from 1 and clipping can engage
    _, res = run(None, 4)
    assert len(res.history) == 4 and res.history[-1]["kl"] > 0.0


def test_trainer_passes_perturbed_rollouts_and_checks_shapes():
    torch.manual_seed(0)
    pol = BanditPolicy(ANSWERS)
    seen = {}

    def reward_fn(samples, texts, perturbed):
        seen["texts"], seen["perturbed"] = texts, perturbed
        return R.VQAThinkerRewards()(samples, texts, perturbed)

    tr = G.GRPOTrainer(pol, reward_fn, torch.optim.SGD(pol.parameters(), lr=0.1),
                       G.GRPOConfig(num_generations=3, perturbed_generations=2),
                       perturb=lambda prompt, rng: (prompt + 1) % 5)
    res = tr.step([{"prompt": 0, "mos": 1.5}, {"prompt": 3, "mos": 4.0}])
    assert pol.calls == [[0, 3], [1, 4]]                      # originals, then the perturbed copies
    assert [len(g) for g in seen["texts"]] == [3, 3] and [len(g) for g in seen["perturbed"]] == [2, 2]
    assert "temporal" in res.rewards.components and res.perturbed.num_generations == 2
    assert {"reward/total", "reward/ranking", "reward/temporal", "loss", "kl", "completion_length"} <= set(res.stats)
    # temporal off: no perturbed generation
    tr.config.temporal = False
    pol.calls.clear()
    tr.step([{"prompt": 0, "mos": 1.5}, {"prompt": 3, "mos": 4.0}])
    assert pol.calls == [[0, 3]]
    # a reward function with the wrong shape, a batch without prompts, G < 2
    bad = G.GRPOTrainer(pol, lambda s, x, p: R.RewardBreakdown({}, np.zeros((1, 1))),
                        torch.optim.SGD(pol.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="reward function returned shape"):
        bad.step([{"prompt": 0, "mos": 1.0}, {"prompt": 1, "mos": 2.0}])
    with pytest.raises(KeyError, match="prompt"):
        tr.step([{"mos": 1.0}])
    with pytest.raises(ValueError, match="at least 2"):
        G.GRPOTrainer(pol, reward_fn, torch.optim.SGD(pol.parameters(), lr=0.1), G.GRPOConfig(num_generations=1))


def test_bandit_learns_the_labels(one_thread):
    torch.manual_seed(0)
    pol = BanditPolicy(ANSWERS)
    tr = G.GRPOTrainer(pol, R.VQAThinkerRewards(R.RewardConfig(temporal=False)),
                       torch.optim.SGD(pol.parameters(), lr=1.0), G.GRPOConfig(num_generations=4))
    totals = [tr.step([{"prompt": q, "mos": 1.25 + q} for q in range(4)]).stats["reward/total"] for _ in range(40)]
    assert np.mean(totals[-5:]) > np.mean(totals[:5]) + 0.5
    # prompt q is best answered by ANSWERS[q] ("1.25" for mos 1.25, ...)
    assert pol.logits.argmax(1)[:4].tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------------------------
# a tiny causal language model
TOKENS = ["<pad>", "<bos>", "<eos>", "<think>", "</think>", "<answer>", "</answer>",
          "1.25", "1.75", "2.25", "2.75", "3.25", "3.75", "4.25", "4.75", "3", "4.5",
          "sharp", "blurry", "F1", "F2", "F3", "F4", "F5", "K", "Q"]
ID = {tok: i for i, tok in enumerate(TOKENS)}
SCORES = TOKENS[7:17]
MOS = {1: 1.35, 2: 2.15, 3: 2.95, 4: 3.75, 5: 4.55}       # the label is the clip's (constant) frame quality


def toy_prompt(frames):
    """<bos>, one token per frame (F1..F5, K for a black frame), Q."""
    return [ID["<bos>"]] + [ID["K"] if f == BLACK else ID[f"F{f}"] for f in frames] + [ID["Q"]]


def toy_decode(ids):
    return "".join(TOKENS[i] for i in ids)


def toy_perturb(prompt, rng):
    """The prompt of a temporally perturbed copy of the clip (VQAThinker's six perturbations)."""
    frames = [int(TOKENS[i][1]) if TOKENS[i].startswith("F") else BLACK for i in prompt[1:-1]]
    idx = G.perturb_frame_indices(np.arange(len(frames)), rng)
    return toy_prompt([frames[i] if i != BLACK else BLACK for i in idx])


def tiny_lm(layers=1):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=len(TOKENS), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      tie_word_embeddings=True, bos_token_id=ID["<bos>"], eos_token_id=ID["<eos>"],
                      pad_token_id=ID["<pad>"])
    return Qwen2ForCausalLM(cfg)


def cold_start(model, rng, steps=200, batch=32, tau=0.6):
    """Supervised warm-up on the output format, with scores only loosely tied to the label
    (drawn with weights exp(-|s - mos| / tau)): the format is learned, the scores are not yet."""
    values = np.array([float(s) for s in SCORES])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        seqs = []
        for _ in range(batch):
            q = int(rng.integers(1, 6))
            w = np.exp(-np.abs(values - MOS[q]) / tau)
            words = [ID[x] for x in rng.choice(["sharp", "blurry"], size=int(rng.integers(1, 3)))]
            seqs.append(toy_prompt([q] * 4) + [ID["<think>"], *words, ID["</think>"], ID["<answer>"],
                                               ID[str(rng.choice(SCORES, p=w / w.sum()))], ID["</answer>"],
                                               ID["<eos>"]])
        width = max(map(len, seqs))
        ids = torch.full((batch, width), ID["<pad>"])
        labels = torch.full((batch, width), -100)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = t(s)
            labels[i, 6:len(s)] = t(s[6:])
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def test_causal_lm_policy_log_probs_match_a_plain_forward(one_thread):
    torch.manual_seed(0)
    model = tiny_lm()
    policy = G.CausalLMPolicy(model, toy_decode, ID["<eos>"], ID["<pad>"], max_new_tokens=6)
    assert isinstance(policy, G.Policy)
    # prompts of different lengths: left padding and position ids must not change the log-probs
    prompts = [toy_prompt([3, 3, 3, 3]), toy_prompt([2, 2])]
    ro = policy.generate(prompts, 2, temperature=1.0)
    assert ro.completion_ids.shape[0] == 4 and ro.num_prompts == 2
    lp = policy.log_probs(ro, torch.arange(4))
    ref = policy.ref_log_probs(ro, torch.arange(4))
    torch.testing.assert_close(lp.detach(), ref)             # the reference is a copy of the start
    for row in range(4):
        m = ro.completion_mask[row].bool()
        seq = t(prompts[row // 2] + ro.completion_ids[row][m].tolist())
        with torch.no_grad():
            logits = model(input_ids=seq[None]).logits[0]
        p = len(prompts[row // 2])
        plain = torch.log_softmax(logits[p - 1:-1], -1).gather(-1, seq[p:, None]).squeeze(-1)
        torch.testing.assert_close(lp[row][m].detach(), plain, atol=1e-5, rtol=0)
        assert ro.texts[row] == toy_decode([i for i in seq[p:].tolist() if i != ID["<eos>"]])


def test_toy_grpo_run_raises_the_reward(one_thread):
    """A tiny Qwen2 LM (hidden 32, one layer) reads 4 frame tokens whose quality is the label and
    must answer <think>..</think><answer>X.XX</answer>. After a format warm-up whose scores are only
    loosely tied to the label, GRPO with the release's rewards (ranking, regression, format,
    temporal; G = 4, temperature 1, beta 0.04) raises the mean total reward clearly."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = tiny_lm()
    cold_start(model, rng)
    policy = G.CausalLMPolicy(model, toy_decode, ID["<eos>"], ID["<pad>"], max_new_tokens=8)
    trainer = G.GRPOTrainer(policy, R.VQAThinkerRewards(),
                            torch.optim.Adam(policy.parameters(), lr=3e-3, eps=1e-3),
                            G.GRPOConfig(), perturb=toy_perturb)
    assert (trainer.config.num_generations, trainer.config.temperature, trainer.config.beta) == (4, 1.0, 0.04)
    batch = [{"prompt": toy_prompt([q] * 4), "mos": MOS[q]} for q in (1, 2, 3, 4, 5) * 2]
    stats = [trainer.step(batch).stats for _ in range(60)]
    total = [s["reward/total"] for s in stats]
    regression = [s["reward/regression"] for s in stats]
    first, last = np.mean(total[:10]), np.mean(total[-10:])
    assert last > first + 0.2, (first, last)
    assert np.mean(regression[-10:]) > np.mean(regression[:10]) + 0.1
    assert np.mean([s["reward/format"] for s in stats[-10:]]) > 0.9
    assert max(s["kl"] for s in stats) < 2.0                 # the policy stays near the reference
