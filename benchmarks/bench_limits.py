"""Memory bounds and start-up time: the pixel budget, batches, and the command line's light commands.

    python benchmarks/bench_limits.py                  # everything
    python benchmarks/bench_limits.py --only sizes     # or: batch, startup

* ``sizes``: 16 black frames at 1080p, 8K (7680x4320), 12000x12000, 10000x16 and 16x10000
  (x264 ultrafast, CRF 51: small files; cached in benchmarks/out/). Each is scored with the default
  model in a fresh process that has already scored a tiny clip; reported: the peak RSS above that
  warm process, the time, and the outcome (a score, or the typed refusal). Goals: 8K and 12000x12000
  at most 1.5 GB above the 1080p figure or refused; the elongated clips at most 300 MB above it.
* ``batch``: 64 small clips (16 frames of 64x64) scored in one ``vqametric.score`` call and one by
  one, each in a fresh warm process. Goal: the batch within 300 MB of one by one.
* ``startup``: wall time of ``vqametric --version``, ``--help`` and ``models`` (median of
  ``--repeats``, default 5). Goal: ``--version`` at most 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
SIZES = {"1080p": (1920, 1080), "8K": (7680, 4320), "12000x12000": (12000, 12000),
         "10000x16": (10000, 16), "16x10000": (16, 10000)}

CHILD = r"""
import json, resource, sys, time
import torch, vqametric
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
vqametric.score(torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8))   # warm: model loaded, pools up
base, t0 = peak_mb(), time.perf_counter()
what = sys.argv[1]
try:
    if what == "batch":
        clips = [torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
                 for i in range(64)]
        out = f"{len(vqametric.score(clips))} scores"
    elif what == "one-by-one":
        clips = [torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
                 for i in range(64)]
        out = f"{len([vqametric.score(c) for c in clips])} scores"
    else:
        out = f"score {vqametric.score(what).score:.3f}"
except vqametric.VQAMetricError as e:
    out = f"{type(e).__name__}"
print(json.dumps({"above_warm_mb": peak_mb() - base, "seconds": time.perf_counter() - t0, "outcome": out}))
"""


def make_clip(name: str) -> str:
    """16 black frames of ``SIZES[name]``, x264 ultrafast CRF 51 (cached)."""
    import av

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"limits-{name}.mp4")
    if os.path.exists(path):
        return path
    w, h = SIZES[name]
    with av.open(path + ".part", "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "51"}
        frame = av.VideoFrame(w, h, "yuv420p")
        for p, v in zip(frame.planes, (16, 128, 128)):
            p.update(bytes([v]) * (p.line_size * p.height))
        for _ in range(16):
            c.mux(s.encode(frame))
        c.mux(s.encode())
    os.replace(path + ".part", path)
    return path


def child(what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sizes() -> list[dict]:
    rows = [{"clip": name, **child(make_clip(name))} for name in SIZES]
    ref = rows[0]["above_warm_mb"]
    for r in rows:
        r["above_1080p_mb"] = r["above_warm_mb"] - ref
    return rows


def batch() -> list[dict]:
    rows = [{"clip": what, **child(what)} for what in ("one-by-one", "batch")]
    rows[1]["above_one_by_one_mb"] = rows[1]["above_warm_mb"] - rows[0]["above_warm_mb"]
    return rows


def startup(repeats: int) -> list[dict]:
    rows = []
    for args in (["--version"], ["--help"], ["models"]):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vqametric", *args], capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        rows.append({"command": "vqametric " + " ".join(args), "median_s": statistics.median(times),
                     "runs": len(times)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["sizes", "batch", "startup"], default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    results = {}
    if args.only in (None, "startup"):
        results["startup"] = startup(args.repeats)
    if args.only in (None, "batch"):
        results["batch"] = batch()
    if args.only in (None, "sizes"):
        results["sizes"] = sizes()
    for part, rows in results.items():
        print(f"\n{part}")
        for r in rows:
            print("  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
