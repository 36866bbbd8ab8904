"""End-to-end scoring time of a 10 s 1080p clip on this machine, against decoding alone.

    python benchmarks/bench_speed.py                 # default model, ONNX and PyTorch runtimes
    python benchmarks/bench_speed.py --repeats 9 --model my_head.onnx

The clip is the demo's synthetic scene, 10 s of 1080p25 H.264 (x264 veryfast, CRF 23, default
GOP), cached in benchmarks/out/. For each runtime it reports the median over ``--repeats`` runs of:

* ``decode``: open the file, plan the sampling and decode the planned frames (the baseline);
* ``end-to-end``: ``vqametric.score(path)`` with a warm scorer (decode + preprocess + head),
  preprocessing each segment while later segments decode (the default);
* ``end-to-end, sequential``: the same with ``overlap=False`` (decode everything, then preprocess);

and the ratios end-to-end / decode (the goal for the default model is at most 1.5). The three
are timed in turn within each repeat, so load changes hit them alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_clip(path: str, seconds: float = 10.0, height: int = 1080, width: int = 1920, fps: int = 25) -> str:
    import av

    from vqametric.demo import scene_frames

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path + ".part", "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        for f in scene_frames(int(seconds * fps), height, width):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(path + ".part", path)
    return path


def main() -> None:
    import torch

    import vqametric
    from vqametric.backends.planned import read_planned
    from vqametric.functional import get_scorer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=vqametric.DEFAULT_MODEL)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    clip = make_clip(os.path.join(HERE, "out", "speed_10s_1080p.mp4"))
    card = vqametric.get_card(args.model)
    rows = {}
    for runtime in ("onnx", "torch"):
        scorer = get_scorer(args.model, runtime=runtime)
        scorer.score([clip])  # warm up (sessions, allocator)
        dec, e2e, seq, parts = [], [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            read_planned(clip, card.sampling)
            dec.append(time.perf_counter() - t)
            scorer.overlap = True
            t = time.perf_counter()
            _, (r,) = scorer.score([clip])
            e2e.append(time.perf_counter() - t)
            parts.append(r.timings)
            scorer.overlap = False
            t = time.perf_counter()
            scorer.score([clip])
            seq.append(time.perf_counter() - t)
        scorer.overlap = True
        rows[runtime] = {
            "decode_s": statistics.median(dec), "end_to_end_s": statistics.median(e2e),
            "ratio": statistics.median(e2e) / statistics.median(dec),
            "end_to_end_sequential_s": statistics.median(seq),
            "ratio_sequential": statistics.median(seq) / statistics.median(dec),
            "decode_share": statistics.median(p["decode"] / p["total"] for p in parts),
            "stages_s": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
        }
    print(json.dumps({"clip": os.path.basename(clip), "model": args.model, "threads": torch.get_num_threads(),
                      "repeats": args.repeats, **rows}, indent=2))


if __name__ == "__main__":
    main()
