"""Compile the kernels for a CUDA architecture without a GPU (Triton's bundled ptxas).

The interpreter runs the kernels' Python, not their compiled form; this catches what only the
compiler sees (types, layouts, loop bounds) and reports registers and spills per specialisation::

    python -m vqametric.kernels.compile_check            # sm_90 (H100/H200)
    python -m vqametric.kernels.compile_check --arch 80

``TRITON_INTERPRET`` must be unset (the module refuses to run otherwise).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

_SCALARS = ("y_off", "y_scale", "c_off", "c_scale", "r_v", "g_u", "g_v", "b_u", "m0", "m1", "m2", "sd0", "sd1", "sd2")
_STRIDES = ("s0t", "s0h", "s0w", "s0c", "s1t", "s1h", "s1w", "s2t", "s2h", "s2w")


def _fragments_signature(in_dtype: str, out_dtype: str) -> dict:
    sig = {"out": "*" + out_dtype, "p0": "*" + in_dtype, "p1": "*" + in_dtype, "p2": "*" + in_dtype}
    sig.update({s: "i32" for s in _STRIDES})
    sig.update({n: "*i32" for n in ("tops", "lefts", "ty0", "ty1")})
    sig.update({n: "*fp32" for n in ("twy0", "twy1")})
    sig.update({n: "*i32" for n in ("tx0", "tx1")})
    sig.update({n: "*fp32" for n in ("twx0", "twx1")})
    sig.update({n: "fp32" for n in _SCALARS})
    sig["T0"] = "i32"
    return sig


def _resize_signature(in_dtype: str, out_dtype: str) -> dict:
    sig = {"out": "*" + out_dtype, "p0": "*" + in_dtype, "p1": "*" + in_dtype, "p2": "*" + in_dtype}
    sig.update({s: "i32" for s in _STRIDES})
    sig["T_SRC"] = "i32"
    sig.update({"ymin": "*i32", "ysize": "*i32", "wy": "*fp32", "xmin": "*i32", "xsize": "*i32", "wx": "*fp32",
                "OH": "i32", "OW": "i32"})
    sig.update({n: "fp32" for n in _SCALARS})
    sig.update({n: "i32" for n in ("o_st", "o_sc", "o_sh", "o_sw", "T0")})
    return sig


def _cases():
    """(kernel name, signature, constexprs, num_warps) of representative specialisations, with the
    launch configuration :mod:`vqametric.kernels` uses on GPUs."""
    for fmt, ind, u8 in ((0, "u8", True), (0, "fp32", False), (1, "u8", False), (1, "i16", False)):
        for up in (False, True):
            yield ("_fragments_kernel", _fragments_signature(ind, "bf16"),
                   dict(FMT=fmt, RGB_U8=u8, GRID=7, PATCH=32, UPSCALE=up, BLOCK=256), 4)
    for fmt, ind, u8 in ((0, "u8", True), (1, "u8", False), (1, "i16", False)):
        for layout, kx, out in ((0, 37, "fp16"), (1, 71, "bf16")):
            yield ("_resize_kernel", _resize_signature(ind, out),
                   dict(FMT=fmt, RGB_U8=u8, KY=23, KX=kx, CLAMP=layout == 1, LAYOUT=layout, PATCH=14, MERGE=2,
                        TPATCH=2, KC=8, BY=8, BX=64), 8)
    for ind in ("u8", "i16"):   # the YUV global view of the fast layout: planes resampled, then converted
        yield ("_resize_kernel", _resize_signature(ind, "fp16"),
               dict(FMT=2, RGB_U8=False, KY=23, KX=37, CLAMP=True, LAYOUT=0, PATCH=14, MERGE=2,
                    TPATCH=2, KC=8, BY=8, BX=64), 8)


def _resource_usage(cubin: bytes) -> str:
    import triton.backends.nvidia as nv

    tool = os.path.join(os.path.dirname(nv.__file__), "bin", "cuobjdump")
    if not os.path.exists(tool):
        return ""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        res = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True)
    lines = [ln.strip() for ln in res.stdout.splitlines() if "REG:" in ln]
    return " ".join(lines[0].split()[:2]) if lines else ""


def compile_all(arch: int = 90) -> list[str]:
    """Compile every case for ``sm_<arch>``; returns one line per case (raises on a compile error)."""
    if os.environ.get("TRITON_INTERPRET", "").strip() not in ("", "0"):
        raise RuntimeError("unset TRITON_INTERPRET to compile the kernels")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import _triton

    target = GPUTarget("cuda", arch, 32)
    report = []
    for name, sig, consts, warps in _cases():
        src = ASTSource(fn=getattr(_triton, name), signature=sig, constexprs=consts)
        k = triton.compile(src, target=target, options={"num_warps": warps})
        spec = ",".join(f"{key}={consts[key]}" for key in ("FMT", "RGB_U8", "UPSCALE", "LAYOUT", "KX") if key in consts)
        report.append(f"{name}[{spec}] {sig['p0'][1:]}->{sig['out'][1:]} warps={warps} "
                      f"{_resource_usage(k.asm['cubin'])}")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compile the Triton kernels for a CUDA architecture (no GPU needed).")
    ap.add_argument("--arch", type=int, default=90, help="compute capability as an integer (90 = sm_90)")
    args = ap.parse_args(argv)
    for line in compile_all(args.arch):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
