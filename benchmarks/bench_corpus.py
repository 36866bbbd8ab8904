"""Corpus throughput: clips per second with ``--jobs 1`` and ``--jobs 2``.

    python benchmarks/bench_corpus.py                          # 20 clips of 10 s at 1280x720
    python benchmarks/bench_corpus.py --clips 8 --seconds 4    # quicker

Writes ``--clips`` clips (x264 ultrafast, 25 fps, a panning textured scene; cached in
benchmarks/out/corpus/) and scores the folder with the default model once per ``--jobs`` value,
each in a fresh process (``vqametric.corpus.score_paths`` with a JSONL output, as
``vqametric score DIR --jobs N -o rows.jsonl`` does). Reported per value: wall time including
start-up (the worker processes import torch and load the model), the time to the first row, the
steady rate (clips after the first ``--jobs`` rows, over the time they took), the CPU time per
clip (the process and its workers, start-up included: the figure that depends least on what else
the machine runs) and the load average before the run. Runs alternate (1, 2, 1, 2 ...)
``--repeats`` times; the median is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from vqametric.corpus import score_paths
folder, jobs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = []
for row in score_paths([folder], jobs=jobs, output=out):
    assert row["status"] == "ok", row
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times}))
"""


def make_clips(folder: str, n: int, seconds: float, width: int, height: int) -> list[str]:
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from media import moving_frames, write_video

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"clip{i:03d}.mp4")
        if not os.path.exists(path):
            base = moving_frames(25, height, width, seed=i, speed=4)  # one second, looped with a shift
            frames = [base[(k + k // 25) % 25] for k in range(int(seconds * 25))]
            write_video(path + ".tmp.mp4", frames, fps=25)
            os.replace(path + ".tmp.mp4", path)
        paths.append(path)
    return paths


def run_once(folder: str, jobs: int) -> dict:
    out = os.path.join(folder, "..", f"rows-j{jobs}.jsonl")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, folder, str(jobs), out], capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # workers included
    times = json.loads(proc.stdout.strip().splitlines()[-1])["times"]
    steady = (len(times) - jobs) / (times[-1] - times[jobs - 1]) if len(times) > jobs else float("nan")
    return {"jobs": jobs, "wall": wall, "clips_per_s": len(times) / wall, "first_row": times[0],
            "steady_clips_per_s": steady, "cpu_s_per_clip": cpu / len(times), "load_before": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    folder = os.path.join(HERE, "out", "corpus", f"{args.clips}x{args.seconds:g}s-{w}x{h}", "clips")
    t0 = time.perf_counter()
    make_clips(folder, args.clips, args.seconds, w, h)
    print(f"{args.clips} clips of {args.seconds:g} s at {w}x{h} ready in {time.perf_counter() - t0:.1f} s; "
          f"{os.cpu_count()} CPU(s)")
    runs: dict[int, list[dict]] = {j: [] for j in args.jobs}
    for _ in range(args.repeats):
        for j in args.jobs:
            r = run_once(folder, j)
            runs[j].append(r)
            print(json.dumps({k: round(v, 3) for k, v in r.items()}))
    print("\n| --jobs | wall (s) | clips/s | first row (s) | steady clips/s | CPU s per clip | load before |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for j, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"| {j} | {med['wall']:.1f} | {med['clips_per_s']:.2f} | {med['first_row']:.1f} | "
              f"{med['steady_clips_per_s']:.2f} | {med['cpu_s_per_clip']:.2f} | {med['load_before']:.1f} |")


if __name__ == "__main__":
    main()
