"""How easily can a generator game the reward? Fixed pixel attacks against each defence.

    python benchmarks/bench_reward_attack.py                          # synthetic scenes
    python benchmarks/bench_reward_attack.py --images DIR --manifest "Train (Images and MOS).csv" --clips 6

Each source clip (32 frames of 240x320 at 30 fps: the synthetic panning scene of ``vqametric demo``
with different seeds, or pans over photos from ``--images``) is degraded (Gaussian blur sigma 2,
noise sigma 0.05, 3x down-and-up scaling) and then attacked through the reward: ``adam`` (8 Adam
steps at lr 0.01 on the pixels, as a reward fine-tuning step would move them) and ``pgd`` (8
signed-gradient steps of 1/255, within 4/255 of the start). The attack sees the reward in training
mode with a given defence; the *gain* is then measured with the deterministic metric
(``QualityReward.eval()``, the same as ``vqametric.score`` of the frames), which is what a user
watching the score would see; the *reward gain* is measured with the defended reward itself, the
mean of 4 fresh random draws (views and transforms the attack never saw), which is what the
generator's training would see.

Reported per defence (mean over clips and degradations): the gain, its ratio to the gain without
defence, PSNR and SSIM of the attacked clip to its start and to the pristine clip, and how many
attacked clips ended above their pristine original without getting at least 3 dB closer to it.
``--defences`` picks the rows (default: DEFENCE_ROWS; ``"views+crop x4"`` averages 4 views per call). Timings are not reported here
(``bench_reward_speed.py``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from vqametric.demo import scene_frames
from vqametric.reward import QualityReward
from vqametric.reward.defences import gaussian_blur

# rows: a defence spec of QualityReward, optionally "xN" for an ensemble of N views per call
DEFENCE_ROWS = ("none", "views", "views+crop", "views+crop+rescale", "views+crop+blur", "views+crop+noise",
                "views+crop x4")
T, H, W = 32, 240, 320


def synthetic_clip(seed: int) -> torch.Tensor:
    frames = np.stack(list(scene_frames(T, H, W, seed=seed)))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def photo_clip(path: str) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    s = max(H * 1.15 / img.height, (W + 2 * T) / img.width)
    img = img.resize((max(W + 2 * T, round(img.width * s)), max(H, round(img.height * s))), Image.BICUBIC)
    a = torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float() / 255.0
    top = (a.shape[1] - H) // 2
    return torch.stack([a[:, top:top + H, 2 * i:2 * i + W] for i in range(T)])


def degrade(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "blur":
        return gaussian_blur(x, 2.0)
    if kind == "noise":
        g = torch.Generator().manual_seed(0)
        return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    small = torch.nn.functional.interpolate(x, scale_factor=1 / 3, mode="bilinear", antialias=True)
    return torch.nn.functional.interpolate(small, size=x.shape[-2:], mode="bilinear").clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else float(10 * np.log10(1.0 / mse))


def attack(reward: QualityReward, start: torch.Tensor, kind: str, steps: int = 8) -> torch.Tensor:
    x = start.clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01) if kind == "adam" else None
    for _ in range(steps):
        r = reward(x).sum()
        if opt is not None:
            opt.zero_grad()
            (-r).backward()
            opt.step()
        else:
            g, = torch.autograd.grad(r, x)
            x = (x.detach() + g.sign() / 255.0)
            x = (start[None] + (x - start[None]).clamp(-4 / 255, 4 / 255)).requires_grad_(True)
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--images", help="a folder of photos to pan over instead of the synthetic scene")
    ap.add_argument("--manifest", help="with --images: a CSV whose first column names the images to use")
    ap.add_argument("--defences", nargs="*", default=list(DEFENCE_ROWS))
    ap.add_argument("--attacks", nargs="*", default=["adam", "pgd"])
    ap.add_argument("--degradations", nargs="*", default=["blur", "noise", "scaling"])
    ap.add_argument("--json", help="write every row here")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    if a.images:
        names = sorted(os.listdir(a.images))
        if a.manifest:
            with open(a.manifest, newline="") as f:
                listed = {os.path.basename(r[0]) for r in csv.reader(f) if r}
            names = [n for n in names if n in listed]
        step = max(1, len(names) // a.clips)
        sources = [photo_clip(os.path.join(a.images, n)) for n in names[::step][:a.clips]]
    else:
        sources = [synthetic_clip(s) for s in range(a.clips)]
    judge = QualityReward(layout="BTCHW", value_range=(0, 1)).eval()

    def score(x: torch.Tensor, reward: QualityReward = judge) -> float:
        with torch.no_grad():
            return float(reward(x[None]))

    def own_score(x: torch.Tensor, spec: str) -> float:
        """The defended reward's expected value: the mean of 4 fresh draws (views and transforms
        the attack never saw), the same draws for every clip."""
        if spec == "none":
            return score(x)
        return score(x, QualityReward(layout="BTCHW", value_range=(0, 1), defences=spec, num_views=4, seed=10_000))

    rows = []
    t0 = time.perf_counter()
    for ci, pristine in enumerate(sources):
        p_score = score(pristine)
        for deg in a.degradations:
            start = degrade(pristine, deg)
            s_score = score(start)
            for name in a.defences:
                spec, _, ens = name.partition(" x")
                reward = QualityReward(layout="BTCHW", value_range=(0, 1), defences=spec, seed=ci,
                                       num_views=int(ens or 1))
                reward.train(spec != "none")
                for kind in a.attacks:
                    x = attack(reward, start, kind)
                    row = {"clip": ci, "degradation": deg, "defence": name, "attack": kind,
                           "pristine": p_score, "start": s_score, "attacked": score(x),
                           "psnr_start": psnr(x, start), "ssim_start": float(ssim(x, start, data_range=1.0)),
                           "psnr_pristine_before": psnr(start, pristine), "psnr_pristine": psnr(x, pristine),
                           "ssim_pristine": float(ssim(x, pristine, data_range=1.0))}
                    row["gain"] = row["attacked"] - s_score
                    row["gain_own"] = own_score(x, spec) - own_score(start, spec)
                    row["hacked"] = row["attacked"] > p_score and row["psnr_pristine"] - row["psnr_pristine_before"] < 3
                    rows.append(row)
                    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                          file=sys.stderr, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{len(sources)} clip(s) x {len(a.degradations)} degradation(s), {time.perf_counter() - t0:.0f} s\n")
    for kind in a.attacks:
        base = statistics.mean(r["gain"] for r in rows if r["attack"] == kind and r["defence"] == "none") \
            if "none" in a.defences else float("nan")
        print(f"attack {kind}\n")
        print("| defence | metric gain | ratio to none | reward gain (ratio) | PSNR / SSIM to start | PSNR / SSIM to pristine (before) "
              "| above pristine, < 3 dB closer |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in a.defences:
            rs = [r for r in rows if r["attack"] == kind and r["defence"] == name]
            g = statistics.mean(r["gain"] for r in rs)
            go = statistics.mean(r["gain_own"] for r in rs)
            print(f"| {name} | {g:+.3f} | {g / base:.2f} | {go:+.3f} ({go / base:.2f}) | {statistics.mean(r['psnr_start'] for r in rs):.1f} dB / "
                  f"{statistics.mean(r['ssim_start'] for r in rs):.3f} | "
                  f"{statistics.mean(r['psnr_pristine'] for r in rs):.1f} dB / "
                  f"{statistics.mean(r['ssim_pristine'] for r in rs):.3f} "
                  f"({statistics.mean(r['psnr_pristine_before'] for r in rs):.1f} dB) | "
                  f"{sum(r['hacked'] for r in rs)} / {len(rs)} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
