"""Does the score follow the rate ladder? Monotonicity and BD-rate of the score against VMAF.

    python benchmarks/bench_rd.py --sources 10 --out benchmarks/out/rd
    python benchmarks/bench_rd.py --sources 6 --seconds 2 --workers 2 --out benchmarks/out/rd

Each source is natural content: a slow pan or zoom (alternating) over a photo, 640x360, 25 fps,
``--seconds`` long, encoded losslessly (x264 QP 0, yuv420p) as the reference. The photos are
drawn with a fixed seed from the recipe's validation split of the BIQ2021 *training* CSV
(``--data``, default ``~/.cache/vqametric/biq2021``; the test CSV is never opened), among those
with MOS >= 3.8; without the data set, textured images are synthesised from a seed instead.
Every source is encoded by three encoders at the same 8 CRFs (``--crfs``, default 18 to 46 in
steps of 4), one thread each, from the same YUV 4:2:0 frames:

* ``x264-medium`` (the anchor), ``x264-ultrafast`` and ``x265-medium``.

Then, per source, the user-facing command runs on a manifest of the 24 encodes::

    vqametric rd SOURCE/rd.csv --reference --anchor x264-medium --json SOURCE/rd.json

(``bitrate_kbps`` in the manifest is the video stream's bytes over its duration, without
container overhead). The script reads the reports back and writes ``summary.json`` into ``--out``:
per encoder, on how many sources the score rises with rate (strictly, and non-strictly) and the
falls counted; per pair (each encoder against x264-medium), the BD-rate of the score and of VMAF
per source, and on how many sources their signs agree. Sources and encodes are cached in
``--out`` and reused when present (generation is deterministic).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT, FPS = 640, 360, 25
ANCHOR = "x264-medium"
ENCODERS = {  # curve -> (codec, preset)
    "x264-medium": ("libx264", "medium"),
    "x264-ultrafast": ("libx264", "ultrafast"),
    "x265-medium": ("libx265", "medium"),
}
CRFS = (18, 22, 26, 30, 34, 38, 42, 46)
MIN_MOS = 3.8
MOTIONS = ("pan", "zoom-in", "diagonal pan", "zoom-out")


# ------------------------------------------------------------------------------------------ content
def pick_photos(data: str, n: int) -> list[str]:
    """``n`` photo paths from the recipe's validation split of the BIQ2021 training CSV (MOS >= 3.8)."""
    from vqametric.train.fast.data import read_biq2021_train, split_train_val

    _, val = split_train_val(read_biq2021_train(data, check_images=False))
    good = [it for it in val if it.mos >= MIN_MOS]
    order = np.random.default_rng(2026).permutation(len(good))[:n]
    return [good[i].path for i in sorted(order)]


def synth_image(seed: int, size: int = 768) -> Image.Image:
    """A textured, photo-like RGB image: coloured multi-octave noise, soft shapes with sharp edges."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size, 3), np.float32)
    for octave in range(1, 8):
        cells = 2 ** octave
        grid = rng.normal(0, 1, (cells + 1, cells + 1, 3)).astype(np.float32)
        up = np.stack([np.asarray(Image.fromarray(grid[..., c]).resize((size, size), Image.BICUBIC))
                       for c in range(3)], -1)
        acc += up / octave ** 1.1
    acc = (acc - acc.mean()) / (acc.std() + 1e-6)
    tint = rng.uniform(60, 190, 3)
    img = Image.fromarray(np.clip(tint + 38 * acc, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(14):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(30, size // 4, 2)
        col = tuple(int(v) for v in rng.integers(20, 235, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=col)
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    grain = rng.normal(0, 2.0, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8))


def motion_frames(img: Image.Image, motion: str, n: int, seed: int) -> list[np.ndarray]:
    """``n`` RGB frames ``(HEIGHT, WIDTH, 3)`` of a slow pan or zoom over ``img`` (sub-pixel boxes,
    bicubic resampling); the boxes keep 16:9."""
    rng = np.random.default_rng(seed)
    W, H = img.size
    t = np.linspace(0.0, 1.0, n)
    if motion in ("pan", "diagonal pan"):
        bw = 0.875 * W if motion == "pan" else 0.81 * W
        bh = bw * HEIGHT / WIDTH
        dx, dy = (0.125 * W, 0.0) if motion == "pan" else (0.15 * W, 0.075 * H)
        x0 = rng.uniform(0, W - bw - dx)
        y0 = rng.uniform(0, H - bh - dy)
        boxes = [(x0 + dx * s, y0 + dy * s, bw) for s in t]
    else:
        w0, w1 = (1.0 * W, 0.72 * W) if motion == "zoom-in" else (0.72 * W, 1.0 * W)
        cx, cy = rng.uniform(0.4, 0.6) * W, rng.uniform(0.35, 0.65) * H
        boxes = []
        for s in t:
            bw = w0 * (w1 / w0) ** s
            bh = bw * HEIGHT / WIDTH
            x = min(max(cx - bw / 2, 0.0), W - bw)
            y = min(max(cy - bh / 2, 0.0), H - bh)
            boxes.append((x, y, bw))
    out = []
    for x, y, bw in boxes:
        bh = bw * HEIGHT / WIDTH
        out.append(np.asarray(img.resize((WIDTH, HEIGHT), Image.BICUBIC, box=(x, y, x + bw, y + bh))))
    return out


def source_frames(i: int, photo: str | None, n: int) -> list[np.ndarray]:
    img = Image.open(photo).convert("RGB") if photo else synth_image(1000 + i)
    return motion_frames(img, MOTIONS[i % len(MOTIONS)], n, seed=i)


# ----------------------------------------------------------------------------------------- encoding
def encode(yuv: list[av.VideoFrame], path: str, codec: str, options: dict[str, str]) -> int:
    """Encode the frames into an MP4 with one encoder thread; returns the video stream's bytes."""
    tmp = path + ".part.mp4"
    total = 0
    with av.open(tmp, "w") as c:
        s = c.add_stream(codec, rate=FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        s.thread_count = 1
        s.options = options
        for f in yuv:
            for p in s.encode(f):
                total += p.size
                c.mux(p)
        for p in s.encode():
            total += p.size
            c.mux(p)
    os.replace(tmp, path)
    return total


def options_for(codec: str, preset: str, crf: int | None) -> dict[str, str]:
    if crf is None:  # lossless reference
        return {"qp": "0", "preset": "ultrafast"}
    opts = {"crf": str(crf), "preset": preset}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error:pools=1:frame-threads=1"
    return opts


def make_source(job: tuple) -> dict:
    """Write the lossless reference and all encodes of one source (cached); returns its manifest rows."""
    i, photo, n, folder, crfs = job
    os.makedirs(folder, exist_ok=True)
    sizes_path = os.path.join(folder, "stream_bytes.json")
    sizes = json.load(open(sizes_path)) if os.path.isfile(sizes_path) else {}
    wanted = ["source.mp4"] + [f"{curve}_crf{crf}.mp4" for curve in ENCODERS for crf in crfs]
    if not all(name in sizes and os.path.isfile(os.path.join(folder, name)) for name in wanted):
        frames = source_frames(i, photo, n)
        yuv = [av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format="yuv420p")
               for f in frames]
        if "source.mp4" not in sizes:
            sizes["source.mp4"] = encode(yuv, os.path.join(folder, "source.mp4"), "libx264",
                                         options_for("libx264", "ultrafast", None))
        for curve, (codec, preset) in ENCODERS.items():
            for crf in crfs:
                name = f"{curve}_crf{crf}.mp4"
                if name not in sizes or not os.path.isfile(os.path.join(folder, name)):
                    sizes[name] = encode(yuv, os.path.join(folder, name), codec, options_for(codec, preset, crf))
                    with open(sizes_path, "w") as f:
                        json.dump(sizes, f, indent=1)
        with open(sizes_path, "w") as f:
            json.dump(sizes, f, indent=1)
    seq = os.path.basename(folder)
    rows = [{"path": f"{curve}_crf{crf}.mp4", "sequence": seq, "curve": curve,
             "bitrate_kbps": round(sizes[f"{curve}_crf{crf}.mp4"] * 8 / 1000 / (n / FPS), 3),
             "reference": "source.mp4"} for curve in ENCODERS for crf in crfs]
    with open(os.path.join(folder, "rd.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return {"sequence": seq, "photo": os.path.basename(photo) if photo else None,
            "motion": MOTIONS[i % len(MOTIONS)], "rows": len(rows)}


# ---------------------------------------------------------------------------------------- the command
def run_rd(folder: str) -> dict:
    """``vqametric rd rd.csv --reference --anchor x264-medium --json rd.json`` in ``folder`` (cached)."""
    report = os.path.join(folder, "rd.json")
    if not os.path.isfile(report):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        exe = os.path.join(os.path.dirname(sys.executable), "vqametric")
        cmd = [exe] if os.path.isfile(exe) else [sys.executable, "-m", "vqametric.cli"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd + ["rd", "rd.csv", "--reference", "--anchor", ANCHOR, "--json", "rd.json.part"],
                              cwd=folder, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"vqametric rd failed in {folder}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        with open(os.path.join(folder, "rd.txt"), "w") as f:
            f.write(proc.stdout)
        os.replace(os.path.join(folder, "rd.json.part"), report)
        print(f"  {os.path.basename(folder)}: vqametric rd {time.perf_counter() - t0:.0f} s", flush=True)
    with open(report) as f:
        return json.load(f)


# -------------------------------------------------------------------------------------------- summary
def both_mean(rows: list[dict], key: str) -> float | None:
    return round(float(np.mean([x[key] for x in rows])), 2) if rows else None


def summarise(reports: list[dict], crfs) -> dict:
    per_source: list[dict] = []
    mono: dict[str, dict] = {}
    pairs: dict[str, dict] = {}
    for rep in reports:
        seq = rep["points"][0]["sequence"]
        src: dict = {"sequence": seq, "curves": {}, "bd": {}}
        for curve in ENCODERS:
            pts = sorted((p for p in rep["points"] if p["curve"] == curve), key=lambda p: p["bitrate_kbps"])
            score = [p["score"] for p in pts]
            vmaf = [p["metrics"]["vmaf"] for p in pts]
            d = np.diff(score)
            src["curves"][curve] = {"bitrate_kbps": [round(p["bitrate_kbps"], 2) for p in pts],
                                    "score": [round(s, 4) for s in score], "vmaf": [round(v, 3) for v in vmaf],
                                    "score_strict": bool(np.all(d > 0)), "score_falls": int(np.sum(d < 0)),
                                    "score_ties": int(np.sum(d == 0)),
                                    "vmaf_falls": int(np.sum(np.diff(vmaf) < 0))}
            cmd_falls = {m["metric"]: m["violations"] for m in rep["monotonicity"] if m["curve"] == curve}
            assert cmd_falls["score"] == src["curves"][curve]["score_falls"]
        for curve in ENCODERS:
            if curve == ANCHOR:
                continue
            by_metric = {d["metric"]: d for d in rep["bd"] if d["curve"] == curve}
            nr, vm = by_metric["score"], by_metric["vmaf"]
            agree = None if nr["bd_rate"] is None or vm["bd_rate"] is None else \
                (math.copysign(1, nr["bd_rate"]) == math.copysign(1, vm["bd_rate"]))
            src["bd"][curve] = {"score_bd_rate": nr["bd_rate"], "vmaf_bd_rate": vm["bd_rate"],
                                "score_bd_quality": nr["bd_quality"], "vmaf_bd_quality": vm["bd_quality"],
                                "psnr_bd_rate": by_metric["psnr_y"]["bd_rate"],
                                "score_note": nr["note"], "vmaf_note": vm["note"], "signs_agree": agree}
        per_source.append(src)
    n = len(per_source)
    for curve in ENCODERS:
        c = [s["curves"][curve] for s in per_source]
        mono[curve] = {"sources": n, "strictly_increasing": sum(x["score_strict"] for x in c),
                       "non_decreasing": sum(x["score_falls"] == 0 for x in c),
                       "falls": sum(x["score_falls"] for x in c), "ties": sum(x["score_ties"] for x in c),
                       "steps": n * (len(crfs) - 1),
                       "vmaf_non_decreasing": sum(x["vmaf_falls"] == 0 for x in c)}
    for curve in ENCODERS:
        if curve == ANCHOR:
            continue
        b = [s["bd"][curve] for s in per_source]
        both = [x for x in b if x["signs_agree"] is not None]
        mean = lambda key: (round(float(np.mean([x[key] for x in b if x[key] is not None])), 2)  # noqa: E731
                            if any(x[key] is not None for x in b) else None)
        pairs[f"{curve} vs {ANCHOR}"] = {
            "sources": n, "both_defined": len(both), "signs_agree": sum(x["signs_agree"] for x in both),
            "score_bd_rate_na": sum(x["score_bd_rate"] is None for x in b),
            "vmaf_bd_rate_na": sum(x["vmaf_bd_rate"] is None for x in b),
            "mean_score_bd_rate": mean("score_bd_rate"), "mean_vmaf_bd_rate": mean("vmaf_bd_rate"),
            "mean_psnr_bd_rate": mean("psnr_bd_rate"),
            "mean_score_bd_rate_where_both": both_mean(both, "score_bd_rate"),
            "mean_vmaf_bd_rate_where_both": both_mean(both, "vmaf_bd_rate")}
    return {"monotonicity": mono, "pairs": pairs, "per_source": per_source}


def print_summary(summary: dict) -> None:
    print("\nencoder         sources  score strictly rising  score never falls  falls (of steps)  "
          "VMAF never falls")
    for curve, m in summary["monotonicity"].items():
        print(f"{curve:<15} {m['sources']:>7}  {m['strictly_increasing']:>21}  {m['non_decreasing']:>17}  "
              f"{m['falls']:>5} of {m['steps']:<8}  {m['vmaf_non_decreasing']:>16}")
    print("\nsequence  pair                           score BD-rate  VMAF BD-rate  signs")
    for s in summary["per_source"]:
        for curve, b in s["bd"].items():
            f = lambda x: "n/a" if x is None else f"{x:+.1f}%"  # noqa: E731
            sign = {True: "agree", False: "DIFFER", None: "n/a"}[b["signs_agree"]]
            print(f"{s['sequence']:<9} {curve + ' vs ' + ANCHOR:<30} {f(b['score_bd_rate']):>13}  "
                  f"{f(b['vmaf_bd_rate']):>12}  {sign}")
    print()
    for pair, p in summary["pairs"].items():
        print(f"{pair}: signs agree on {p['signs_agree']} of {p['both_defined']} sources with both BD-rates "
              f"({p['score_bd_rate_na']} score n/a, {p['vmaf_bd_rate_na']} VMAF n/a); mean BD-rate score "
              f"{p['mean_score_bd_rate']}%, VMAF {p['mean_vmaf_bd_rate']}%")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=int, default=10, help="number of sources (default %(default)s)")
    p.add_argument("--seconds", type=float, default=3.0, help="source length (default %(default)s)")
    p.add_argument("--crfs", default=",".join(map(str, CRFS)), help="CRF ladder (default %(default)s)")
    p.add_argument("--data", default=os.path.expanduser("~/.cache/vqametric/biq2021"),
                   help="BIQ2021 folder (training CSV only); synthetic images when absent")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default %(default)s)")
    p.add_argument("--out", required=True, help="folder for sources, encodes and reports")
    args = p.parse_args(argv)
    crfs = tuple(int(c) for c in args.crfs.split(","))
    n = int(round(args.seconds * FPS))
    os.makedirs(args.out, exist_ok=True)
    photos = pick_photos(args.data, args.sources) if os.path.isdir(args.data) else [None] * args.sources
    folders = [os.path.join(args.out, f"src{i:02d}") for i in range(args.sources)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        meta = list(pool.map(make_source, [(i, ph, n, fo, crfs) for i, (ph, fo) in enumerate(zip(photos, folders))]))
        t_enc = time.perf_counter() - t0
        print(f"sources and encodes: {t_enc:.0f} s", flush=True)
        reports = list(pool.map(run_rd, folders))
    t_rd = time.perf_counter() - t0 - t_enc
    summary = summarise(reports, crfs)
    out = {"kind": "vqametric-bench-rd", "command": "python benchmarks/bench_rd.py " +
           " ".join(argv if argv is not None else sys.argv[1:]),
           "content": "BIQ2021 training CSV (validation split, MOS >= 3.8)" if photos[0] else "synthetic images",
           "size": f"{WIDTH}x{HEIGHT}", "fps": FPS, "frames": n, "crfs": list(crfs), "anchor": ANCHOR,
           "encoders": {k: {"codec": c, "preset": pr} for k, (c, pr) in ENCODERS.items()},
           "sources": meta, "seconds": {"encode": round(t_enc, 1), "rd": round(t_rd, 1)}, **summary}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(out, f, indent=2)
    print_summary(summary)
    print(f"\nwrote {os.path.join(args.out, 'summary.json')} (encode {t_enc:.0f} s, vqametric rd {t_rd:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
