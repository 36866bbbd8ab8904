"""Corpus throughput (``--jobs``, ``--engine ray``) and the parent's memory over 10,000 small files.

    python benchmarks/bench_corpus.py                          # 20 clips of 10 s at 1280x720
    python benchmarks/bench_corpus.py --clips 8 --seconds 4    # quicker
    python benchmarks/bench_corpus.py --runs local:1 local:2 ray:2 --repeats 3
    python benchmarks/bench_corpus.py --memory 10000           # parent memory, 10,000 small files

Throughput: writes ``--clips`` clips (x264 ultrafast, 25 fps, a panning textured scene; cached in
benchmarks/out/corpus/) and scores the folder with the default model once per ``--runs`` entry
(``ENGINE:JOBS``), each in a fresh process (``vqametric.corpus.score_paths`` with a JSONL output,
as ``vqametric score DIR --engine ENGINE --jobs N -o rows.jsonl`` does; the Ray engine starts its
own local Ray). Reported per entry: wall time including start-up (the workers or actors import
torch and load the model; Ray starts), the time to the first row, the steady rate (clips after the
first ``JOBS`` rows, over the time they took), the CPU time per clip (local engine only: the
process and its workers, start-up included; Ray's processes are not children that can be timed)
and the load average before the run. Runs alternate ``--repeats`` times; medians are reported,
with each Ray entry's ratio to the local entry with the same ``JOBS``.

Memory (``--memory N``): N small files (hard links to 4 tiny encoded clips, 100 a folder) scored
by the ``vqametric score DIR -o rows.jsonl -q`` command, one fresh process per ``--memory-runs``
entry. Each worker's scorer scores each distinct clip (by inode) once and returns that result for
its links, so that the run measures what the parent does per file (listing, scheduling, the rows
streamed back, the writer and the summary), not the model. Reported: the parent's RSS after
start-up, at 10 %, 50 % and 100 % of the rows, and its peak (``VmHWM``) growth over start-up.
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
folder, engine, jobs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = []
for row in score_paths([folder], jobs=jobs, output=out, engine=engine):
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


def run_once(folder: str, engine: str, jobs: int) -> dict:
    out = os.path.join(folder, "..", f"rows-{engine}{jobs}.jsonl")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, folder, engine, str(jobs), out], capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # workers included
    times = json.loads(proc.stdout.strip().splitlines()[-1])["times"]
    steady = (len(times) - jobs) / (times[-1] - times[jobs - 1]) if len(times) > jobs else float("nan")
    return {"wall": wall, "clips_per_s": len(times) / wall, "first_row": times[0], "steady_clips_per_s": steady,
            "cpu_s_per_clip": cpu / len(times) if engine == "local" else float("nan"), "load_before": load}


def throughput(args: argparse.Namespace) -> None:
    w, h = (int(x) for x in args.size.split("x"))
    folder = os.path.join(HERE, "out", "corpus", f"{args.clips}x{args.seconds:g}s-{w}x{h}", "clips")
    t0 = time.perf_counter()
    make_clips(folder, args.clips, args.seconds, w, h)
    print(f"{args.clips} clips of {args.seconds:g} s at {w}x{h} ready in {time.perf_counter() - t0:.1f} s; "
          f"{os.cpu_count()} CPU(s)")
    runs: dict[tuple[str, int], list[dict]] = {}
    for entry in args.runs:
        engine, jobs = entry.split(":")
        runs[(engine, int(jobs))] = []
    for _ in range(args.repeats):
        for (engine, jobs), rs in runs.items():
            r = run_once(folder, engine, jobs)
            rs.append(r)
            print(json.dumps({"engine": engine, "jobs": jobs, **{k: round(v, 3) for k, v in r.items()}}))
    med = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in runs.items()}
    print("\n| engine | --jobs | wall (s) | clips/s | ratio | first row (s) | steady clips/s | ratio | "
          "CPU s per clip | load before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (engine, jobs), m in med.items():
        base = med.get(("local", jobs)) if engine != "local" else None
        ratio = (lambda k: f"{m[k] / base[k]:.2f}" if base else "")  # noqa: E731
        print(f"| {engine} | {jobs} | {m['wall']:.1f} | {m['clips_per_s']:.3f} | {ratio('clips_per_s')} | "
              f"{m['first_row']:.1f} | {m['steady_clips_per_s']:.3f} | {ratio('steady_clips_per_s')} | "
              f"{m['cpu_s_per_clip']:.2f} | {m['load_before']:.1f} |".replace("| nan |", "| - |"))


# -- the parent's memory over many small files ---------------------------------------------------
class CachedScorer:
    """Scores each distinct file (by inode) once and returns that result for its hard links."""

    def __init__(self, scorer):
        self.scorer, self.done = scorer, {}

    def score(self, paths, **kw):
        st = os.stat(paths[0])
        key = (st.st_dev, st.st_ino)
        if key not in self.done:
            self.done[key] = self.scorer.score(paths, **kw)
        return self.done[key]


def cached_factory(model, device, runtime):
    from vqametric.functional import get_scorer

    return CachedScorer(get_scorer(model, device, runtime))


def rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_small_files(root: str, n: int) -> str:
    """``n`` hard links to 4 tiny clips (32x32, 8 frames), 100 a folder; made once."""
    folder = os.path.join(root, f"small-{n}")
    if os.path.exists(os.path.join(folder, "done")):
        return folder
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from media import moving_frames, write_video

    os.makedirs(folder, exist_ok=True)
    seeds = [write_video(os.path.join(root, f"tiny{i}.mp4"), moving_frames(8, 32, 32, seed=i)) for i in range(4)]
    for i in range(n):
        sub = os.path.join(folder, f"d{i // 100:03d}")
        os.makedirs(sub, exist_ok=True)
        os.link(seeds[i % 4], os.path.join(sub, f"f{i:05d}.mp4"))
    open(os.path.join(folder, "done"), "w").close()
    return folder


def memory_child(folder: str, engine: str, jobs: int, out: str, n: int) -> None:
    """One ``vqametric score FOLDER`` command in this process; prints the RSS samples as JSON."""
    import threading

    import tqdm  # noqa: F401 - what the command imports is loaded before the first sample
    import vqametric.corpus.api  # noqa: F401
    import vqametric.corpus.summary  # noqa: F401
    from vqametric.cli import build_parser
    from vqametric.corpus import run_score

    if engine == "ray":
        import vqametric.corpus.ray_engine  # noqa: F401
    args = build_parser().parse_args(["score", folder, "-o", out, "-q", "--engine", engine, "--jobs", str(jobs)])
    start, samples, marks = rss_mib(), {}, {max(1, n // 10): "10%", n // 2: "50%", n: "100%"}
    stop = threading.Event()

    def watch() -> None:  # counts the rows in the output as they are written, and notes the RSS
        seen, offset = 0, 0
        while not stop.wait(0.05):
            try:
                with open(out, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                continue
            offset += len(chunk)
            seen += chunk.count(b"\n")
            for at, name in marks.items():
                if seen >= at and name not in samples:
                    samples[name] = rss_mib()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    code = run_score(args, cached_factory)
    wall = time.perf_counter() - t0
    time.sleep(0.2)
    stop.set()
    watcher.join()
    print(json.dumps({"exit": code, "wall": wall, "start": start, **samples, "peak": rss_mib("VmHWM")}))


def memory(args: argparse.Namespace) -> None:
    import tempfile

    root = os.path.join(tempfile.gettempdir(), "vqametric-bench-corpus")
    t0 = time.perf_counter()
    folder = make_small_files(root, args.memory)
    print(f"{args.memory} small files ready in {time.perf_counter() - t0:.1f} s under {root}")
    print("\n| engine | --jobs | files | wall (s) | files/s | RSS at start (MiB) | at 10 % | at 50 % | at 100 % | "
          "peak growth (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for entry in args.memory_runs:
        engine, jobs = entry.split(":")
        out = os.path.join(root, f"rows-{engine}{jobs}.jsonl")
        proc = subprocess.run([sys.executable, __file__, "--memory-child", folder, engine, jobs, out,
                               str(args.memory)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {engine} | {jobs} | {args.memory} | {r['wall']:.1f} | {args.memory / r['wall']:.0f} | "
              f"{r['start']:.0f} | {r.get('10%', float('nan')):.0f} | {r.get('50%', float('nan')):.0f} | "
              f"{r.get('100%', float('nan')):.0f} | {r['peak'] - r['start']:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--runs", nargs="+", default=["local:1", "local:2", "ray:2"], metavar="ENGINE:JOBS")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--memory", type=int, default=None, metavar="N", help="measure the parent's memory over N files")
    ap.add_argument("--memory-runs", nargs="+", default=["local:2", "ray:2"], metavar="ENGINE:JOBS")
    ap.add_argument("--memory-child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        folder, engine, jobs, out, n = args.memory_child
        memory_child(folder, engine, int(jobs), out, int(n))
    elif args.memory:
        memory(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
