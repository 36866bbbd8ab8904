"""End-to-end scoring time of a 10 s 1080p clip on this machine, against decoding alone.

    python benchmarks/bench_speed.py                 # default model, ONNX and PyTorch runtimes
    python benchmarks/bench_speed.py --repeats 9 --model my_head.onnx
    python benchmarks/bench_speed.py --baseline vqametric-fast-0.5     # another model in the same repeats

The clip is the demo's synthetic scene, 10 s of 1080p25 H.264 (x264 veryfast, CRF 23, default
GOP), cached in benchmarks/out/. For each runtime it reports the median over ``--repeats`` runs of:

* ``decode``: open the file, plan the sampling and decode the planned frames (the baseline);
* ``end-to-end``: ``vqametric.score(path)`` with a warm scorer (decode + preprocess + head),
  preprocessing each segment while later segments decode (the default);
* ``end-to-end, sequential``: the same with ``overlap=False`` (decode everything, then preprocess);

* ``full decode``: decoding every frame of the file (the floor a decoder-bound scorer cannot beat
  without skipping frames);

and the ratios end-to-end / decode and end-to-end / full decode. They are timed in turn within
each repeat, so load changes hit them alike. ``--baseline MODEL`` times that model's ONNX
end-to-end path in the same repeats. The peak RSS of a fresh process that imports vqametric and
scores the clip once (ONNX Runtime) is reported per model.
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
    ap.add_argument("--baseline", default=None, help="also time this model's ONNX path in the same repeats")
    args = ap.parse_args()
    clip = make_clip(os.path.join(HERE, "out", "speed_10s_1080p.mp4"))
    card = vqametric.get_card(args.model)
    rows = {}
    base = get_scorer(args.baseline, runtime="onnx") if args.baseline else None
    if base is not None:
        base.score([clip])
    base_times = []
    for runtime in ("onnx", "torch"):
        scorer = get_scorer(args.model, runtime=runtime)
        scorer.score([clip])  # warm up (sessions, allocator)
        dec, e2e, seq, parts, full = [], [], [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            read_planned(clip, card.sampling)
            dec.append(time.perf_counter() - t)
            t = time.perf_counter()
            full_decode(clip)
            full.append(time.perf_counter() - t)
            if base is not None and runtime == "onnx":
                t = time.perf_counter()
                base.score([clip])
                base_times.append(time.perf_counter() - t)
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
            "full_decode_s": statistics.median(full),
            "ratio_to_full_decode": statistics.median(e2e) / statistics.median(full),
            "end_to_end_sequential_s": statistics.median(seq),
            "ratio_sequential": statistics.median(seq) / statistics.median(dec),
            "decode_share": statistics.median(p["decode"] / p["total"] for p in parts),
            "stages_s": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
        }
    if base is not None:
        rows["baseline"] = {"model": args.baseline, "end_to_end_s": statistics.median(base_times),
                            "ratio_model_to_baseline": rows["onnx"]["end_to_end_s"] / statistics.median(base_times),
                            "peak_rss_mb": peak_rss(args.baseline, clip)}
    rows["onnx"]["peak_rss_mb"] = peak_rss(args.model, clip)
    print(json.dumps({"clip": os.path.basename(clip), "model": args.model, "threads": torch.get_num_threads(),
                      "repeats": args.repeats, **rows}, indent=2))


def full_decode(path: str) -> int:
    """Decode every frame of ``path`` (threaded as FFmpeg chooses); returns the frame count."""
    import av

    with av.open(path) as c:
        c.streams.video[0].thread_type = "AUTO"
        return sum(1 for _ in c.decode(video=0))


def peak_rss(model: str, clip: str) -> float:
    """Peak RSS in MB of a fresh process that imports vqametric and scores ``clip`` once (ONNX)."""
    code = ("import resource, vqametric; vqametric.score({!r}, model={!r}, runtime='onnx'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)").format(clip, model)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return round(float(out.strip().splitlines()[-1]), 1)


if __name__ == "__main__":
    main()
