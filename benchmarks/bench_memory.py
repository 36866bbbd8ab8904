"""Peak memory and time of scoring long clips: streaming decode vs the full-decode approach.

    python benchmarks/bench_memory.py                       # 0.5, 2 and 10 minute 1080p clips
    python benchmarks/bench_memory.py --minutes 0.5 2 --height 720

For each clip length it generates a 1080p H.264 clip (cached in benchmarks/out/), then runs each
approach in a fresh Python process and reports that process's peak RSS and wall time:

* ``streaming``: ``vqametric.score`` with a randomly initialised head of the default architecture
  (decodes only the planned frames: seek to the keyframe before each, decode forward, drop the rest);
* ``full-decode-keep``: the naive approach: decode every frame into memory, then index the planned
  frames (skipped, and reported as projected, when it would need more than ``--max-gb``);
* ``full-decode-drop``: decode every frame but keep only the planned ones (bounded memory, but its
  time grows with the clip length).

Peak memory of the streaming path must stay flat as the clip grows; the medians of ``--repeats``
runs are reported.
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

CHILD = r"""
import json, resource, sys, time
import numpy as np
mode, path, head_path = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "streaming":
    import vqametric
    r = vqametric.score(path, model=head_path)
    extra = {"score": r.score, "decode_s": r.timings["decode"], "frames": r.clip["num_frames"]}
else:
    import av
    import vqametric
    from vqametric.sampling import make_plan
    card = vqametric.get_card(head_path)
    with vqametric.open_clip(path) as clip:
        info = clip.info
    plan = make_plan(info.num_frames, info.height, info.width, card.sampling, fps=info.fps)
    want = set(plan.frame_indices)
    kept = []
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, f in enumerate(c.decode(s)):
            if mode == "full-decode-keep" or i in want:
                kept.append(f.to_ndarray(format="yuv420p"))
    frames = [kept[i] for i in plan.frame_indices] if mode == "full-decode-keep" else kept
    extra = {"frames": info.num_frames, "kept": len(kept)}
elapsed = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"peak_rss_mb": peak_mb, "seconds": elapsed, **extra}))
"""


def make_clip(minutes: float, height: int, fps: int = 25) -> str:
    """A panning textured H.264 clip (yuv420p, GOP 250 as x264's default), cached on disk."""
    import av
    import numpy as np

    os.makedirs(OUT, exist_ok=True)
    width = height * 16 // 9 // 2 * 2
    path = os.path.join(OUT, f"clip_{minutes:g}min_{height}p.mp4")
    if os.path.exists(path):
        return path
    n = int(round(minutes * 60 * fps))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width + 2 * n // 10 + 8]
    base = (128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 8, xx.shape)).clip(0, 255).astype(np.uint8)
    chroma = np.full((height // 2, width // 2), 128, np.uint8)
    tmp = path + ".part"
    with av.open(tmp, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "28"}
        s.thread_type = "AUTO"
        for i in range(n):
            off = i // 5
            y = np.ascontiguousarray(base[:, off:off + width])
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, chroma.reshape(height // 4, width), chroma.reshape(height // 4, width)]), format="yuv420p")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)
    return path


def default_head(path: str) -> str:
    """A randomly initialised head of the default architecture (speed and memory only)."""
    import torch

    from vqametric.backends import FastHead, save_head

    if not os.path.exists(path):
        torch.manual_seed(0)
        save_head(FastHead(), path)
    return path


def run_child(mode: str, clip: str, head: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, clip, head], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[0.5, 2.0, 10.0])
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-gb", type=float, default=6.0, help="skip full-decode-keep above this projected size")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    head = default_head(os.path.join(OUT, "random_default_head.safetensors"))
    rows = []
    for minutes in args.minutes:
        t = time.perf_counter()
        clip = make_clip(minutes, args.height)
        gen = time.perf_counter() - t
        width = args.height * 16 // 9 // 2 * 2
        frames = int(round(minutes * 60 * 25))
        keep_gb = frames * width * args.height * 1.5 / 2**30
        for mode in ("streaming", "full-decode-drop", "full-decode-keep"):
            if mode == "full-decode-keep" and keep_gb > args.max_gb:
                rows.append({"minutes": minutes, "mode": mode, "skipped": f"would hold {keep_gb:.1f} GiB of frames"})
                continue
            runs = [run_child(mode, clip, head) for _ in range(args.repeats)]
            rows.append({"minutes": minutes, "mode": mode, "frames": frames,
                         "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                         "seconds": statistics.median(r["seconds"] for r in runs),
                         "clip_mb": os.path.getsize(clip) / 2**20, "generate_s": gen})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| clip | approach | frames | peak RSS (MiB) | time (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['minutes']:g} min {args.height}p | {r['mode']} | | skipped: {r['skipped']} | |")
        else:
            print(f"| {r['minutes']:g} min {args.height}p | {r['mode']} | {r['frames']} | {r['peak_rss_mb']:.0f} | "
                  f"{r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
