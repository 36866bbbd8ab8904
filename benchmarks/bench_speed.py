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

    python benchmarks/bench_speed.py --codecs                  # x264 medium/veryfast, x265, AV1, VP9
    python benchmarks/bench_speed.py --codecs x264-medium x265 --repeats 9

``--codecs``: skipping non-reference pictures while decoding (``vqametric.io.decode.SKIP_NONREF``,
off with ``VQAMETRIC_NO_SKIP=1``), on 10 s 1080p25 clips of the same scene encoded with each codec
at its usual settings and default GOP (see ``CODEC_CLIPS``; encoded once, cached in
benchmarks/out/). Per clip and repeat, in turn: ``vqametric.score(path)`` with skipping and
without, decoding the planned frames with and without (``read_planned``), and decoding every
frame. Reports medians, the ratios to the full decode, and whether the scores are identical.
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


# --codecs clips: name -> (file name, encoder, encoder options, container). 10 s of 1080p25 of the
# demo's panning scene, each codec at its usual settings (default GOP: keyframes far apart).
CODEC_CLIPS = {
    "x264-medium": ("codec_x264_medium.mp4", "libx264", {"crf": "23", "preset": "medium"}, "mp4"),
    "x264-veryfast": ("speed_10s_1080p.mp4", "libx264", {"crf": "23", "preset": "veryfast"}, "mp4"),
    "x265": ("codec_x265_medium.mp4", "libx265", {"crf": "28", "preset": "medium",
                                                   "x265-params": "log-level=error"}, "mp4"),
    "av1": ("codec_av1_svt_p8.mp4", "libsvtav1", {"crf": "35", "preset": "8"}, "mp4"),
    "vp9": ("codec_vp9_good_c4.webm", "libvpx-vp9", {"crf": "32", "b": "0", "deadline": "good",
                                                    "cpu-used": "4", "row-mt": "1"}, "webm"),
}


def make_clip(path: str, seconds: float = 10.0, height: int = 1080, width: int = 1920, fps: int = 25,
              codec: str = "libx264", options: dict | None = None, container: str = "mp4") -> str:
    """Encode the demo's scene to ``path`` once (cached: an existing file is reused)."""
    import av

    from vqametric.demo import scene_frames

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path + ".part", "w", format=container) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = dict(options or {"crf": "23", "preset": "veryfast"})
        for f in scene_frames(int(seconds * fps), height, width):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(path + ".part", path)
    return path


def codec_clip(name: str) -> str:
    file, codec, options, container = CODEC_CLIPS[name]
    return make_clip(os.path.join(HERE, "out", file), codec=codec, options=options, container=container)


def main() -> None:
    import torch

    import vqametric
    from vqametric.backends.planned import read_planned
    from vqametric.functional import get_scorer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=vqametric.DEFAULT_MODEL)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", default=None, help="also time this model's ONNX path in the same repeats")
    ap.add_argument("--codecs", nargs="*", default=None, choices=sorted(CODEC_CLIPS),
                    help="time skipping non-reference pictures on these clips (all when none is named)")
    args = ap.parse_args()
    if args.codecs is not None:
        bench_codecs(args.codecs or list(CODEC_CLIPS), args.repeats, args.model)
        return
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


def bench_codecs(names: list[str], repeats: int, model: str) -> None:
    """``--codecs``: end to end and planned decode with and without skipping, against full decode."""
    import av

    import vqametric
    from vqametric.backends.planned import read_planned
    from vqametric.io import decode

    card = vqametric.get_card(model)
    clips = {name: codec_clip(name) for name in names}
    vqametric.score(clips[names[0]], model=model)  # warm up (sessions, allocator)
    rows = {}
    for name, clip in clips.items():
        with av.open(clip) as c:
            st = c.streams.video[0]
            codec, frames = st.codec_context.name, st.frames
        t = {k: [] for k in ("e2e_skip", "e2e_noskip", "decode_skip", "decode_noskip", "full")}
        cpu = {k: [] for k in t}  # process CPU time (all threads): the work done, less sensitive to load
        scores = {"skip": set(), "noskip": set()}

        def timed(key, fn):
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            t[key].append(time.perf_counter() - w)
            cpu[key].append(time.process_time() - c)
            return out
        for r in range(repeats):
            for skip in ((True, False) if r % 2 == 0 else (False, True)):  # alternate which goes first
                decode.SKIP_NONREF = skip
                key = "skip" if skip else "noskip"
                scores[key].add(timed("e2e_" + key, lambda: vqametric.score(clip, model=model)).score)
                timed("decode_" + key, lambda: read_planned(clip, card.sampling))
            decode.SKIP_NONREF = True
            timed("full", lambda: full_decode(clip))
        med = {k: statistics.median(v) for k, v in t.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        rows[name] = {"codec": codec, "frames": frames, **{k + "_s": round(v, 3) for k, v in med.items()},
                      **{k + "_cpu_s": round(v, 3) for k, v in mcpu.items()},
                      "e2e_skip/full": round(med["e2e_skip"] / med["full"], 2),
                      "e2e_noskip/full": round(med["e2e_noskip"] / med["full"], 2),
                      "e2e_skip/e2e_noskip": round(med["e2e_skip"] / med["e2e_noskip"], 2),
                      "cpu: e2e_skip/full": round(mcpu["e2e_skip"] / mcpu["full"], 2),
                      "cpu: e2e_noskip/full": round(mcpu["e2e_noskip"] / mcpu["full"], 2),
                      "cpu: decode_skip/full": round(mcpu["decode_skip"] / mcpu["full"], 2),
                      "cpu: decode_noskip/full": round(mcpu["decode_noskip"] / mcpu["full"], 2),
                      "scores_identical": len(scores["skip"] | scores["noskip"]) == 1,
                      "score": sorted(scores["skip"] | scores["noskip"])}
        decode.SKIP_NONREF = True
    print(json.dumps({"model": model, "repeats": repeats, "cpus": os.cpu_count(), "rows": rows}, indent=2))
    print("\nWall time, medians (s); ratios to the full decode:\n")
    print("| clip | decoder | end to end, skip | end to end, no skip | full decode | skip / full "
          "| no skip / full | planned decode, skip / no skip | scores identical |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['codec']} | {r['e2e_skip_s']:.3f} | {r['e2e_noskip_s']:.3f} | {r['full_s']:.3f} "
              f"| {r['e2e_skip/full']:.2f}x | {r['e2e_noskip/full']:.2f}x "
              f"| {r['decode_skip_s']:.3f} / {r['decode_noskip_s']:.3f} | {'yes' if r['scores_identical'] else 'NO'} |")
    print("\nProcess CPU time (all threads), medians (s); ratios to the full decode:\n")
    print("| clip | end to end, skip | end to end, no skip | full decode | skip / full | no skip / full "
          "| planned decode, skip / full | planned decode, no skip / full |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['e2e_skip_cpu_s']:.3f} | {r['e2e_noskip_cpu_s']:.3f} | {r['full_cpu_s']:.3f} "
              f"| {r['cpu: e2e_skip/full']:.2f}x | {r['cpu: e2e_noskip/full']:.2f}x "
              f"| {r['cpu: decode_skip/full']:.2f}x | {r['cpu: decode_noskip/full']:.2f}x |")


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
