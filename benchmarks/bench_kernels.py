"""Benchmark of the fused preprocessing kernels against the reference chain.

For each frame size and layout it times

* ``kernel``: :mod:`vqametric.kernels` (only where the kernels run natively: a CUDA device);
* ``reference``: the plain-PyTorch references (:func:`~vqametric.sampling.reference.preprocess_reference`,
  :mod:`vqametric.sampling.layouts`), which convert and resample one frame at a time;
* ``naive``: the chain people write first: convert the whole clip to float RGB, then
  crop/resize it as one batch, then normalise;
* ``torchvision``: a torchvision ``transforms.v2`` chain on uint8 RGB (only where torchvision
  imports; RGB input only);

and a device-to-device copy of the input (``torch.empty_like(x).copy_(x)``) as the bandwidth
ceiling. It reports the median time, the speed-up against the reference measured in the same run,
and the achieved bandwidth ``(input bytes + output bytes) / time``, also as a percentage of the copy
bandwidth ``2 * input bytes / copy time``. On CUDA the times come from CUDA events; on CPU from
``time.perf_counter``.

Examples::

    python benchmarks/bench_kernels.py                         # CUDA if present, else CPU
    python benchmarks/bench_kernels.py --device cpu --frames 8 --sizes 1080p,4k --repeat 3
    python benchmarks/bench_kernels.py --input nv12 --layouts fast,qwen2.5
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vqametric.io.frames import RGBFrames, YUV420Frames  # noqa: E402
from vqametric.sampling import layouts as L  # noqa: E402
from vqametric.sampling.plan import SamplingConfig, make_plan  # noqa: E402
from vqametric.sampling.reference import fragment_indices, frames_to_rgb, normalise, preprocess_reference  # noqa: E402
from vqametric.sampling.reference import resize  # noqa: E402

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}
LAYOUTS = ("fast", "internvl", "qwen2.5", "qwen3")


def make_input(kind: str, t: int, h: int, w: int, device: torch.device):
    """Random frames and their tensors (for the byte count and the copy baseline)."""
    g = torch.Generator(device=device).manual_seed(0)

    def u8(*shape):
        return torch.randint(0, 256, shape, generator=g, device=device, dtype=torch.uint8)

    if kind == "rgb":
        x = u8(t, h, w, 3)
        return RGBFrames(x), [x]
    ch, cw = (h + 1) // 2, (w + 1) // 2
    y = u8(t, h, w)
    if kind == "i420":
        u, v = u8(t, ch, cw), u8(t, ch, cw)
        return YUV420Frames(y, u, v), [y, u, v]
    uv = u8(t, ch, cw, 2)
    return YUV420Frames.from_nv12(y, uv), [y, uv]


def nbytes(tensors) -> int:
    return sum(x.numel() * x.element_size() for x in tensors)


def outputs(res):
    if isinstance(res, dict):
        return list(res.values())
    if isinstance(res, tuple):
        return [r for r in res if r.is_floating_point()]
    return [res]


# ------------------------------------------------------------------------------------------
# the naive chains: whole clip to float first, then crop/resize as one batch


def naive_fast(frames, plan, dtype):
    rgb = frames_to_rgb(frames)
    out = {}
    if plan.fragments is not None:
        src = rgb
        if plan.fragments.resize_to is not None:
            src = F.interpolate(rgb, size=plan.fragments.resize_to, mode="bilinear", align_corners=False)
        rows, cols = fragment_indices(plan.fragments, rgb.device)
        out["fragments"] = normalise(src[:, :, rows, cols], plan.mean, plan.std).to(dtype)
    if plan.global_size > 0:
        g = resize(rgb, (plan.global_size, plan.global_size), plan.interpolation)
        out["global_view"] = normalise(g, plan.mean, plan.std).to(dtype)
    return out


def naive_internvl(frames, size, dtype):
    x = resize(frames_to_rgb(frames), (size, size), "bicubic").clamp(0, 1)
    return normalise(x, L.IMAGENET_MEAN, L.IMAGENET_STD).to(dtype)


def naive_qwen(frames, layout, dtype):
    h, w = frames.size
    x = resize(frames_to_rgb(frames), layout.resized_size(h, w), "bicubic").clamp(0, 1)
    pv, grid = L.patchify_qwen(normalise(x, layout.mean, layout.std), layout)
    return pv.to(dtype), grid


# ------------------------------------------------------------------------------------------
# torchvision v2 (uint8 RGB only)


def torchvision_chains():
    try:
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as TF
    except Exception:
        return None

    def to_float(x, mean, std, dtype):
        return TF.normalize(TF.to_dtype(x, torch.float32, scale=True), list(mean), list(std)).to(dtype)

    def fast(frames, plan, dtype):
        x = frames.data.permute(0, 3, 1, 2)
        out = {}
        if plan.fragments is not None:
            src = x
            if plan.fragments.resize_to is not None:
                src = TF.resize(x, list(plan.fragments.resize_to), interpolation=v2.InterpolationMode.BILINEAR,
                                antialias=False)
            rows, cols = fragment_indices(plan.fragments, x.device)
            out["fragments"] = to_float(src[:, :, rows, cols], plan.mean, plan.std, dtype)
        if plan.global_size > 0:
            mode = v2.InterpolationMode.BICUBIC if plan.interpolation == "bicubic" else v2.InterpolationMode.BILINEAR
            g = TF.resize(x, [plan.global_size] * 2, interpolation=mode, antialias=True)
            out["global_view"] = to_float(g, plan.mean, plan.std, dtype)
        return out

    def internvl(frames, size, dtype):
        x = TF.resize(frames.data.permute(0, 3, 1, 2), [size, size], interpolation=v2.InterpolationMode.BICUBIC,
                      antialias=True)
        return to_float(x, L.IMAGENET_MEAN, L.IMAGENET_STD, dtype)

    def qwen(frames, layout, dtype):
        h, w = frames.size
        x = TF.resize(frames.data.permute(0, 3, 1, 2), list(layout.resized_size(h, w)),
                      interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
        pv, grid = L.patchify_qwen(to_float(x, layout.mean, layout.std, torch.float32), layout)
        return pv.to(dtype), grid

    return {"fast": fast, "internvl": internvl, "qwen": qwen}


# ------------------------------------------------------------------------------------------


def timer(device: torch.device, repeat: int, warmup: int):
    def run(fn):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeat):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)
    return run


def chains_for(layout: str, frames, tensors, dtype, device, use_kernels: bool, tv):
    """``{name: callable}`` for one layout; every callable returns the layout's output."""
    from vqametric import kernels as K

    t, (h, w) = frames.num_frames, frames.size
    is_rgb = isinstance(frames, RGBFrames)
    if layout == "fast":
        plan = make_plan(t, h, w, SamplingConfig())  # FAST-VQA defaults: 7x7 fragments of 32, 224 global view
        chains = {"reference": lambda: preprocess_reference(frames, plan, dtype),
                  "naive": lambda: naive_fast(frames, plan, dtype)}
        if use_kernels:
            chains = {"kernel": lambda: K.preprocess(frames, plan, dtype), **chains}
        if tv and is_rgb:
            chains["torchvision"] = lambda: tv["fast"](frames, plan, dtype)
        return chains
    if layout == "internvl":
        chains = {"reference": lambda: L.internvl_tiles_reference(frames, 448, dtype),
                  "naive": lambda: naive_internvl(frames, 448, dtype)}
        if use_kernels:
            chains = {"kernel": lambda: K.internvl_tiles(frames, 448, dtype), **chains}
        if tv and is_rgb:
            chains["torchvision"] = lambda: tv["internvl"](frames, 448, dtype)
        return chains
    lay = L.QWEN25_VL if layout == "qwen2.5" else L.QWEN3_VL
    chains = {"reference": lambda: L.qwen_vl_patches_reference(frames, lay, dtype),
              "naive": lambda: naive_qwen(frames, lay, dtype)}
    if use_kernels:
        chains = {"kernel": lambda: K.qwen_vl_patches(frames, lay, dtype), **chains}
    if tv and is_rgb:
        chains["torchvision"] = lambda: tv["qwen"](frames, lay, dtype)
    return chains


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when present)")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--sizes", default="1080p,4k", help=f"comma list of {sorted(SIZES)} or HxW")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma list of {LAYOUTS}")
    ap.add_argument("--input", default="rgb", choices=["rgb", "i420", "nv12"], help="uint8 input format")
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--chains", default="", help="only these chains (comma list), e.g. reference,naive")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--kernels-anywhere", action="store_true",
                    help="time the kernel chain wherever it runs (e.g. CPU with TRITON_INTERPRET=1, to test this script)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = getattr(torch, args.dtype)
    from vqametric import kernels as K
    use_kernels = (device.type == "cuda" or args.kernels_anywhere) and K.runs_on(device)
    tv = torchvision_chains()
    only = {c for c in args.chains.split(",") if c}
    run = timer(device, args.repeat, args.warmup)
    torch.set_grad_enabled(False)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    print(f"# device: {name}; torch {torch.__version__}; input {args.input} uint8; output {args.dtype}; "
          f"{args.frames} frames; median of {args.repeat} after {args.warmup} warm-up runs")
    if not use_kernels:
        print("# kernel chain not timed: the fused kernels run on CUDA devices only "
              "(the Triton interpreter is a correctness tool, not a CPU backend)")
    if tv is None:
        print("# torchvision not importable: torchvision chain skipped")
    print()
    print("| size | layout | chain | median ms | vs reference | GB/s (in+out) | % of copy BW |")
    print("|---|---|---|---:|---:|---:|---:|")
    for size in [s for s in args.sizes.split(",") if s]:
        h, w = SIZES[size] if size in SIZES else (int(v) for v in size.lower().split("x"))
        frames, tensors = make_input(args.input, args.frames, h, w, device)
        in_bytes = nbytes(tensors)
        copy_t = run(lambda: [torch.empty_like(x).copy_(x) for x in tensors])
        copy_bw = 2 * in_bytes / copy_t
        print(f"| {size} | - | copy (input) | {copy_t * 1e3:.2f} | | {copy_bw / 1e9:.1f} | 100 |")
        for layout in [x for x in args.layouts.split(",") if x]:
            chains = chains_for(layout, frames, tensors, dtype, device, use_kernels, tv)
            if only:
                chains = {k: v for k, v in chains.items() if k in only}
            first = outputs(next(iter(chains.values()))())
            out_bytes = nbytes(first)
            if "kernel" in chains and "reference" in chains:  # parity of what is being timed
                ref = outputs(chains["reference"]())
                err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(first, ref))
                print(f"| {size} | {layout} | (kernel vs reference: max abs difference {err:.2e}) | | | | |")
            times = {k: run(fn) for k, fn in chains.items()}
            ref_t = times.get("reference")
            for k, t_ in times.items():
                bw = (in_bytes + out_bytes) / t_
                vs = f"{ref_t / t_:.2f}x" if ref_t else ""
                print(f"| {size} | {layout} | {k} | {t_ * 1e3:.1f} | {vs} | {bw / 1e9:.2f} | "
                      f"{100 * bw / copy_bw:.1f} |", flush=True)
        del frames, tensors
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
