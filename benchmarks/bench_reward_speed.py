"""Forward plus backward of the reward on CPU, against the metric's differentiable path as it was.

    python benchmarks/bench_reward_speed.py [--repeats 5] [--shape 2 16 3 240 320]

Each configuration runs in a fresh process: one warm-up call (oneDNN builds its kernels on the
first call of a shape), then ``--repeats`` timed calls of forward + ``backward()`` on a random
float ``(B, T, 3, H, W)`` tensor that requires grad. Reported: the median seconds, the ratio to
the baseline of the same run, and the process's peak RSS (everything: interpreter, torch, model,
autograd graph).

* ``baseline``: ``create_metric(as_loss=True)`` with the head as stored (batch norms as separate
  layers, contiguous weights), the differentiable path before the reward existed;
* ``metric as_loss``: the same call now (the head prepared by ``backends/gradient_graph.py``);
* ``reward eval``: ``QualityReward(...).eval()``, deterministic;
* ``reward train``: ``QualityReward(...)`` in training mode with its default defences.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys, time
import torch
import vqametric
from vqametric.backends.head import load_head
from vqametric.reward import QualityReward
what, repeats, shape = sys.argv[1], int(sys.argv[2]), tuple(int(v) for v in sys.argv[3:])
if what in ("baseline", "metric as_loss"):
    m = vqametric.create_metric(as_loss=True)
    if what == "baseline":
        m.scorer.model, _ = load_head(m.card.weights_path("torch"))
        for p in m.scorer.model.parameters():
            p.requires_grad_(False)
    fn = lambda x: m(x)
else:
    r = QualityReward(layout="BTCHW", value_range=(0, 1))
    r.train(what == "reward train")
    fn = lambda x: -r(x).mean()
x = torch.rand(*shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
times = []
for i in range(repeats + 1):
    t0 = time.perf_counter()
    fn(x).backward()
    times.append(time.perf_counter() - t0)
    x.grad = None
print(json.dumps({"median_s": statistics.median(times[1:]), "first_s": times[0],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
CONFIGS = ("baseline", "metric as_loss", "reward eval", "reward train")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=5, default=[2, 16, 3, 240, 320])
    a = ap.parse_args(argv)
    rows = {}
    for what in CONFIGS:
        out = subprocess.run([sys.executable, "-c", CHILD, what, str(a.repeats), *map(str, a.shape)],
                             capture_output=True, text=True, check=True)
        rows[what] = json.loads(out.stdout.strip().splitlines()[-1])
        print(what, rows[what], file=sys.stderr, flush=True)
    base = rows["baseline"]["median_s"]
    print(f"forward + backward of {tuple(a.shape)}, median of {a.repeats} after one warm-up call\n")
    print("| path | median | ratio to baseline | first call | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for what, r in rows.items():
        print(f"| {what} | {r['median_s']:.2f} s | {r['median_s'] / base:.2f} | {r['first_s']:.2f} s | "
              f"{r['peak_rss_mb']:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
