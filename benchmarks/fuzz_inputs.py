"""Fuzz the input layer: every input must score (finite, in [1, 5]) or raise a ``VQAMetricError``.

    python benchmarks/fuzz_inputs.py --files 3000 --tensors 2000 --seed 0 --out report.json
    python benchmarks/fuzz_inputs.py --files 600 --tensors 400 --workers 1 --workdir fuzz-out
    python benchmarks/fuzz_inputs.py --replay fuzz-out/failures/file-00042.json   # one case, with its traceback

Two kinds of case, both scored with the default model (the user path):

* mutated files: a seed corpus of tiny clips and images is encoded with PyAV (H.264/HEVC MP4,
  MOV with rotation, 10-bit and 4:4:4 H.264, VP9 MKV/WebM, AV1 WebM, MJPEG/MPEG-4 AVI, MPEG-TS, FFV1
  gray, GIF, Y4M, PNG, JPEG; encoders that are missing are skipped). Each case applies one to three
  mutations (bit flips, byte overwrites, truncation, chunk duplication/deletion, codec tag and
  header field swaps, box size corruption, zeroed ranges, appended junk, splices of two files) and
  passes the result as a path, bytes or a file object to ``open_clip(...).info`` and ``score``.
* tensor inputs: Hypothesis (fixed seed) draws a JSON description of an input: numpy or torch,
  any dtype, rank 0-6, odd shapes (zeros, ones, extreme aspect ratios; at most ``MAX_ELEMENTS``
  elements), values in and out of range (NaN, Inf, -0, 1e300), non-contiguous, negative-stride,
  broadcast and byte-swapped views, ``requires_grad``, ``RGBFrames``/``YUV420Frames`` with bad
  arguments, odd ``fps`` values and lists mixing valid and invalid videos.

Cases run in worker subprocesses (``--workers``), each with a per-case timeout and an address-space
limit, so that a hang (``timeout``) or a hard crash (``crash``: segfault, abort) is counted and
the worker restarted. Outcomes: ``ok``, ``typed`` (a ``VQAMetricError``), and the failures
``raw`` (any other exception), ``bad_score`` (NaN or outside [1, 5]), ``timeout``, ``crash`` and
``harness_error`` (this script could not build the input). Raw exceptions are grouped by class and
the deepest vqametric source line of their traceback; cases over 10 s are listed as slow. Every
failing case is saved under ``<workdir>/failures/`` (its description, and the mutant bytes for files,
since the seed corpus depends on the local FFmpeg) for ``--replay``. A summary table is printed, the
JSON report written with ``--out``; the exit status is 1 when any case failed.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pickle
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAILURES = ("raw", "bad_score", "timeout", "crash", "harness_error")
OUTCOMES = ("ok", "typed") + FAILURES
MAX_ELEMENTS = 200_000
SLOW_S = 10.0


# -- seed corpus ------------------------------------------------------------------------------
def _scene(n: int, h: int, w: int, seed: int = 0):
    """``(n, h, w, 3)`` uint8 frames: a panning gradient with noise and a moving square."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        f = np.stack([128 + 90 * np.sin((xx + 3 * i) / 6.0), 128 + 90 * np.cos(yy / 5.0 + i / 4.0),
                      128 + 60 * np.sin((xx + yy + 2 * i) / 9.0)], -1) + rng.normal(0, 8, (h, w, 3))
        s = max(2, min(h, w) // 4)
        y0, x0 = (3 * i) % (h - s), (5 * i) % (w - s)
        f[y0:y0 + s, x0:x0 + s] = (240, 30, 30)
        out[i] = np.clip(f, 0, 255)
    return out


# name, container format, codec, pix_fmt, (width, height), frames, encoder options, extras
SEEDS = [
    ("h264.mp4", "mp4", "libx264", "yuv420p", (64, 48), 12, {"preset": "ultrafast", "g": "4", "bf": "2"}, {}),
    ("h264_aac.mp4", "mp4", "libx264", "yuv420p", (80, 48), 10, {"preset": "ultrafast"}, {"audio": "aac"}),
    ("h264_rot90.mov", "mov", "libx264", "yuv420p", (96, 64), 8, {"preset": "ultrafast"}, {"rotation": 90}),
    ("h264_10bit.mp4", "mp4", "libx264", "yuv420p10le", (64, 48), 8, {"preset": "ultrafast"}, {}),
    ("h264_444.mkv", "matroska", "libx264", "yuv444p", (64, 48), 8, {"preset": "ultrafast"}, {}),
    ("h264.ts", "mpegts", "libx264", "yuv420p", (64, 48), 10, {"preset": "ultrafast", "g": "5"}, {}),
    ("hevc.mp4", "mp4", "libx265", "yuv420p", (96, 64), 8,
     {"preset": "ultrafast", "x265-params": "log-level=error", "tag": "hvc1"}, {}),
    ("vp9.mkv", "matroska", "libvpx-vp9", "yuv420p", (64, 48), 10, {"deadline": "realtime", "cpu-used": "8"}, {}),
    ("vp9_opus.webm", "webm", "libvpx-vp9", "yuv420p", (160, 96), 8, {"deadline": "realtime", "cpu-used": "8"},
     {"audio": "libopus"}),
    ("av1.webm", "webm", "libsvtav1", "yuv420p", (64, 64), 8, {"preset": "12"}, {}),
    ("mjpeg.avi", "avi", "mjpeg", "yuvj420p", (64, 48), 8, {}, {}),
    ("mpeg4.avi", "avi", "mpeg4", "yuv420p", (64, 48), 12, {"bf": "2", "g": "6"}, {}),
    ("ffv1_gray.mkv", "matroska", "ffv1", "gray", (64, 48), 6, {}, {}),
    ("anim.gif", "gif", "gif", "rgb8", (64, 48), 6, {}, {}),
    ("raw.y4m", "yuv4mpegpipe", "rawvideo", "yuv420p", (32, 24), 6, {}, {}),
    ("image.png", "image2", "png", "rgb24", (64, 48), 1, {}, {"update": True}),
    ("image.jpg", "image2", "mjpeg", "yuvj420p", (64, 48), 1, {}, {"update": True}),
]


def _encode(path: str, fmt: str, codec: str, pix_fmt: str, size: tuple[int, int], n: int, options: dict,
            extras: dict) -> None:
    import fractions

    import av

    w, h = size
    options = dict(options)
    tag = options.pop("tag", None)
    with av.open(path, "w", format=fmt, options={"update": "1"} if extras.get("update") else {}) as c:
        s = c.add_stream(codec, rate=fractions.Fraction(25))
        s.width, s.height, s.pix_fmt, s.options = w, h, pix_fmt, options
        if tag:
            s.codec_tag = tag
        if extras.get("rotation"):
            s.set_display_rotation(extras["rotation"])
        a = c.add_stream(extras["audio"], rate=48000) if extras.get("audio") else None
        for i, f in enumerate(_scene(n, h, w)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            import numpy as np

            samples = a.frame_size or 1024
            for k in range(max(1, int(n / 25 * 48000 / samples))):
                af = av.AudioFrame.from_ndarray(np.zeros((1, samples * a.channels), np.float32) + 0.01,
                                                format="flt", layout=a.layout.name)
                af.sample_rate, af.pts = 48000, k * samples
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)


def make_seeds(folder: str) -> dict[str, bytes]:
    """Encode the seed corpus into ``folder``; returns ``{name: bytes}`` of those that encoded."""
    import av

    av.logging.set_level(None)
    os.makedirs(folder, exist_ok=True)
    seeds, skipped = {}, []
    saved_stderr = os.dup(2)  # some encoder libraries log straight to stderr
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        for name, fmt, codec, pix_fmt, size, n, options, extras in SEEDS:
            path = os.path.join(folder, name)
            try:
                _encode(path, fmt, codec, pix_fmt, size, n, options, extras)
                with open(path, "rb") as f:
                    data = f.read()
            except Exception as e:  # an encoder or muxer this FFmpeg lacks
                skipped.append(f"seed {name} skipped: {type(e).__name__}: {e}")
                continue
            if data:
                seeds[name] = data
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    for line in skipped:
        print(line, file=sys.stderr)
    if not seeds:
        raise RuntimeError("no seed file could be encoded; is PyAV installed with its FFmpeg encoders?")
    return seeds


# -- file mutations ----------------------------------------------------------------------------
# Tags found in the seeds' headers, with same-length replacements (others become b"z" * len).
TAG_SWAPS = {
    b"avc1": [b"zzzz", b"hvc1", b"av01", b"mp4v"], b"hvc1": [b"zzzz", b"avc1", b"hev1"], b"mp4a": [b"zzzz", b"avc1"],
    b"V_VP9": [b"V_ZZZ", b"V_AV1"], b"V_AV1": [b"V_ZZZ", b"V_VP9"], b"V_MPEG4/ISO/AVC": [b"V_MPEG4/ISO/ZZZ"],
    b"MJPG": [b"ZZZZ", b"H264"], b"FMP4": [b"ZZZZ", b"MJPG"], b"vide": [b"soun", b"zzzz"],
}
TAGS = list(TAG_SWAPS) + [
    b"avcC", b"hvcC", b"ftyp", b"moov", b"mdat", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stsz", b"stco",
    b"stts", b"stss", b"ctts", b"tkhd", b"mvhd", b"mdhd", b"hdlr", b"elst", b"A_OPUS", b"webm", b"matroska",
    b"\x1aE\xdf\xa3", b"RIFF", b"AVI ", b"movi", b"idx1", b"strh", b"strf", b"avih", b"\x89PNG", b"IHDR", b"IDAT",
    b"\xff\xd8", b"\xff\xc0", b"\xff\xc4", b"\xff\xda", b"GIF89a", b"YUV4MPEG2", b"FRAME", b"\x00\x00\x01",
]
EXTREMES = (0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _occurrences(data: bytes, tag: bytes, limit: int = 64) -> list[int]:
    out, i = [], data.find(tag)
    while i >= 0 and len(out) < limit:
        out.append(i)
        i = data.find(tag, i + 1)
    return out


def _pick_tag(rng: random.Random, data: bytes) -> tuple[bytes, int] | None:
    found = [(t, i) for t in TAGS for i in _occurrences(data, t, 8)]
    return rng.choice(found) if found else None


def _int32(rng: random.Random) -> bytes:
    v = rng.choice(EXTREMES) if rng.random() < 0.7 else rng.getrandbits(32)
    return struct.pack(rng.choice([">I", "<I"]), v)


def mutate(data: bytes, rng: random.Random, seeds: dict[str, bytes]) -> tuple[bytes, str]:
    """One random mutation of ``data``; returns the mutant and a description of what was done."""
    n = len(data)
    op = rng.choice(["flip", "flip", "overwrite", "truncate", "truncate", "duplicate", "delete", "tag", "tag",
                     "field", "field", "size", "zero", "append", "splice"])
    if op == "flip":
        b = bytearray(data)
        offs = [rng.randrange(n) for _ in range(rng.choice([1, 1, 2, 4, 16]))]
        for o in offs:
            b[o] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip bits at {offs[:4]}{'...' if len(offs) > 4 else ''}"
    if op == "overwrite":
        b = bytearray(data)
        o, k = rng.randrange(n), rng.choice([1, 2, 4, 8, 64])
        b[o:o + k] = bytes(rng.getrandbits(8) for _ in range(min(k, n - o)))
        return bytes(b), f"overwrite {k} random bytes at {o}"
    if op == "truncate":
        cut = rng.randrange(1, n) if rng.random() < 0.5 else n - rng.randrange(1, max(2, n // 8))
        return data[:cut], f"truncate to {cut} of {n} bytes"
    if op in ("duplicate", "delete", "zero"):
        a = rng.randrange(n)
        k = min(n - a, rng.choice([1, 4, 16, 256, 4096]))
        if op == "duplicate":
            at = rng.randrange(n)
            return data[:at] + data[a:a + k] + data[at:], f"insert a copy of bytes [{a}, {a + k}) at {at}"
        if op == "delete":
            return data[:a] + data[a + k:], f"delete bytes [{a}, {a + k})"
        return data[:a] + bytes(k) + data[a + k:], f"zero bytes [{a}, {a + k})"
    if op in ("tag", "field", "size"):
        hit = _pick_tag(rng, data)
        if hit is None:
            return mutate(data, rng, seeds)
        tag, i = hit
        if op == "tag":
            new = rng.choice(TAG_SWAPS.get(tag, [b"z" * len(tag)]))
            return data[:i] + new + data[i + len(tag):], f"replace tag {tag!r} at {i} with {new!r}"
        if op == "field":
            o = i + len(tag) + rng.randrange(0, 40)
            new = _int32(rng)
            return data[:o] + new + data[o + 4:], f"write {new.hex()} at {o} ({o - i} bytes after {tag!r})"
        o = max(0, i - 4)
        new = _int32(rng)
        return data[:o] + new + data[o + 4:], f"write {new.hex()} over the 4 bytes before {tag!r} at {i}"
    if op == "append":
        junk = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 16, 1024]))) if rng.random() < 0.7 else data
        return data + junk, f"append {len(junk)} bytes"
    other_name = rng.choice(sorted(seeds))
    other = seeds[other_name]
    a, b = rng.randrange(1, n), rng.randrange(len(other))
    return data[:a] + other[b:], f"splice bytes [0, {a}) with {other_name}[{b}:]"


def file_case(seeds: dict[str, bytes], case_seed: int) -> dict:
    """A mutated-file case: deterministic given the seed corpus and ``case_seed``."""
    rng = random.Random(case_seed)
    name = rng.choice(sorted(seeds))
    data, recipe = seeds[name], []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        data, what = mutate(data, rng, seeds)
        recipe.append(what)
        if not data:
            break
    return {"kind": "file", "seed_file": name, "case_seed": case_seed, "recipe": recipe,
            "source": rng.choice(["path", "bytes", "fileobj"]), "data": data}


# -- tensor input descriptions (Hypothesis) ----------------------------------------------------
NUMPY_DTYPES = ["uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool",
                "complex64", "object"]
TORCH_DTYPES = ["uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "bfloat16", "float32", "float64",
                "bool", "complex64"]
FILLS = ["valid", "valid", "valid", "zeros", "ones", "max", "min", "wide", "above1", "nan", "inf", "ninf",
         "neg_zero", "huge", "tiny"]
NUMPY_LAYOUTS = ["contig", "contig", "negstride", "step", "fortran", "transposed", "broadcast", "readonly",
                 "byteswapped"]
TORCH_LAYOUTS = ["contig", "contig", "transposed", "permuted", "expanded", "step", "channels_last", "offset",
                 "inference", "conj"]
FPS = [None] * 8 + [30, 25.0, 1, 0.5, 240, 0, -0.0, -1, float("nan"), float("inf"), float("-inf"), 1e-320, 1e300,
                    "abc", "30", True, [30]]
BIT_DEPTHS = [8, 8, 10, 10, 12, 16, 9, 7, 17, 0, -1, 10.5, "10", None, True, 8.0, float("nan")]
MATRICES = ["bt709", "bt709", "bt601", "bt2020", "xyz", None, 709, "BT709"]
RANGES = [False, False, True, "no", None, 1, 2]


def tensor_strategies(max_side: int = 256):
    """Hypothesis strategy of a tensor case: a JSON-able description built by :func:`build_video`.

    Many videos are well formed (right rank, layout, dtype and range; any strides), so that inputs
    reach the sampling and model stages; most others bend one to three rules of a well-formed one."""
    from hypothesis import strategies as st

    dim = st.one_of(st.sampled_from([0, 1, 1, 2, 3, 3, 4, 5]), st.integers(1, 16), st.integers(17, 96),
                    st.integers(97, max(97, max_side)))
    size = st.one_of(st.integers(1, 16), st.integers(17, 96), st.integers(1, max(1, max_side)))
    seed = st.integers(0, 2**32 - 1)

    def capped(dims: list[int]) -> list[int]:
        while _prod(dims) > MAX_ELEMENTS:
            k = max(range(len(dims)), key=lambda j: dims[j])
            dims[k] //= 2
        return dims

    @st.composite
    def shape(draw, lib):
        mode = draw(st.sampled_from(["video", "video", "video", "image", "batch", "any"]))
        if mode == "any":
            return capped(draw(st.lists(dim, min_size=0, max_size=6)))
        c = draw(st.sampled_from([3, 3, 3, 3, 1, 2, 4, 5]))
        t, h, w = draw(dim), draw(dim), draw(dim)
        last = (lib == "numpy") != (draw(st.integers(0, 4)) == 0)  # sometimes the other layout
        hw = [h, w, c] if last else [c, h, w]
        return capped({"video": [t] + hw, "image": hw, "batch": [draw(st.integers(0, 3)), t] + hw}[mode])

    @st.composite
    def good_array(draw, lib=None, channels_last=None):
        lib = lib or draw(st.sampled_from(["numpy", "torch", "torch"]))
        floats = ["float16", "float32", "float64"] + (["bfloat16"] if lib == "torch" else [])
        dtype = draw(st.sampled_from(["uint8", "uint8", "float32"] + floats))
        t, h, w = draw(st.integers(1, 24)), draw(size), draw(size)
        if draw(st.integers(0, 19)) == 0:  # a strip: extreme aspect ratio, few pixels
            long = draw(st.integers(max(1, max_side // 4), max_side))
            t, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 4)), long
            h, w = (w, h) if draw(st.booleans()) else (h, w)
        last = lib == "numpy" if channels_last is None else channels_last
        dims = capped([t, h, w, 3] if last else [t, 3, h, w])
        if draw(st.integers(0, 5)) == 0 and channels_last is None:
            dims = dims[1:]  # one image
        return {"type": "array", "lib": lib, "dtype": dtype, "shape": dims,
                "fill": draw(st.sampled_from(["valid"] * 6 + ["zeros", "ones", "neg_zero", "tiny"])),
                "layout": draw(st.sampled_from(NUMPY_LAYOUTS if lib == "numpy" else TORCH_LAYOUTS)),
                "requires_grad": lib == "torch" and draw(st.booleans()), "seed": draw(seed)}

    @st.composite
    def array(draw, lib=None, channels_last=None):
        """A well-formed array with one to three of dtype, values and shape bent."""
        spec = draw(good_array(lib, channels_last))
        for field in draw(st.lists(st.sampled_from(["dtype", "fill", "shape"]), min_size=1, max_size=3, unique=True)):
            if field == "dtype":
                spec["dtype"] = draw(st.sampled_from(NUMPY_DTYPES if spec["lib"] == "numpy" else TORCH_DTYPES))
            elif field == "fill":
                spec["fill"] = draw(st.sampled_from(FILLS))
            else:
                spec["shape"] = draw(shape(spec["lib"]))
        return spec

    @st.composite
    def yuv(draw):
        """Well-formed planar 4:2:0 frames, or with one argument bent, or with many."""
        defect = draw(st.sampled_from([None, None, "bit_depth", "matrix", "full_range", "shape", "dtype", "values",
                                       "numpy", "many"]))
        many = defect == "many"
        t, h, w = draw(dim if many else st.integers(1, 16)), draw(dim if many else size), draw(dim if many else size)
        while t * h * w > MAX_ELEMENTS // 2:
            t, h, w = max(t // 2, 1), max(h // 2, 1), max(w // 2, 1)
        depth = draw(st.sampled_from([8, 8, 10, 12, 16]))
        dtype = "uint8" if depth == 8 else draw(st.sampled_from(["int16", "uint16", "int32"]))
        shapes = {"y": [t, h, w], "u": [t, (h + 1) // 2, (w + 1) // 2], "v": [t, (h + 1) // 2, (w + 1) // 2]}
        spec = {"type": "yuv", "bit_depth": depth, "matrix": draw(st.sampled_from(MATRICES[:4])),
                "full_range": draw(st.booleans()), "nv12": draw(st.integers(0, 5)) == 0}
        if defect in ("bit_depth", "many"):
            spec["bit_depth"] = draw(st.sampled_from(BIT_DEPTHS))
        if defect in ("matrix", "many"):
            spec["matrix"] = draw(st.sampled_from(MATRICES))
        if defect in ("full_range", "many"):
            spec["full_range"] = draw(st.sampled_from(RANGES))
        if defect in ("shape", "many"):
            bad = draw(st.sampled_from(["u", "v", "y", "rank"]))
            if bad == "rank":
                shapes["u"] = shapes["u"][1:]
            else:
                shapes[bad][draw(st.integers(0, 2))] += draw(st.sampled_from([-1, 1, 7]))
                shapes[bad] = [max(0, d) for d in shapes[bad]]
        bent = draw(st.sampled_from("yuv")) if defect in ("dtype", "values", "numpy") else None
        for p in "yuv":
            lib = "numpy" if (defect == "numpy" and p == bent) or (many and draw(st.integers(0, 6)) == 0) else "torch"
            pdtype, fill = dtype, draw(st.sampled_from(["valid"] * 4 + ["zeros", "max"]))
            if (defect == "dtype" and p == bent) or (many and draw(st.booleans())):
                pdtype = draw(st.sampled_from(["uint8", "int8", "int16", "uint16", "int32", "int64", "float32",
                                               "bool"]))
            if (defect == "values" and p == bent) or (many and draw(st.booleans())):
                fill = draw(st.sampled_from(["wide", "min", "max", "above1"]))
            layouts = ["contig"] * 4 + (TORCH_LAYOUTS if lib == "torch" else NUMPY_LAYOUTS)
            spec[p] = {"type": "array", "lib": lib, "dtype": pdtype, "shape": shapes[p], "fill": fill,
                       "bits": spec["bit_depth"], "layout": draw(st.sampled_from(layouts)), "requires_grad": False,
                       "seed": draw(seed)}
        return spec

    rgb = st.builds(lambda data: {"type": "rgb", "data": data}, st.one_of(
        good_array("torch", True), good_array("torch", True), array("torch", True), array(), good_array("numpy", True),
        st.sampled_from([[[1, 2, 3]], "frames", 3.5, None])))
    other = st.sampled_from([None, 3, 2.5, "", "no/such/file.mp4", [], (), {"frames": 1}, b"\x00" * 16])
    single = st.one_of(good_array(), good_array(), good_array(), array(), array(), array(), rgb, yuv(),
                       other.map(lambda v: {"type": "value", "value": v}))
    listed = st.builds(lambda items, tup: {"type": "list", "items": items, "tuple": tup},
                       st.lists(single, min_size=0, max_size=3), st.booleans())
    video = st.one_of(single, single, single, single, listed)
    fps = st.one_of(st.just(None), st.sampled_from(FPS))
    return st.builds(lambda v, f: {"kind": "tensor", "video": v, "fps": f}, video, fps)


def _prod(dims) -> int:
    p = 1
    for d in dims:
        p *= d
    return p


def tensor_cases(n: int, seed: int, max_side: int = 256) -> list[dict]:
    """``n`` tensor case descriptions drawn by Hypothesis from a fixed ``seed`` (no database, no shrinking)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    out: list[dict] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(tensor_strategies(max_side))
    def collect(case):
        out.append(case)

    collect()
    return out[:n]


# -- building inputs (worker side) -------------------------------------------------------------
def _values(spec: dict, shape: list[int]):
    """float64 (or complex128) values for ``spec['fill']`` in the range of ``spec['dtype']``."""
    import numpy as np

    rng = np.random.default_rng(spec["seed"])
    dtype, fill = spec["dtype"], spec["fill"]
    is_float = dtype in ("float16", "bfloat16", "float32", "float64", "complex64", "object")
    top = 2 ** spec["bits"] - 1 if isinstance(spec.get("bits"), int) and 8 <= spec["bits"] <= 16 else 255
    lo, hi = _limits(dtype)
    base = rng.uniform(0, 1, shape) if is_float else rng.integers(0, top + 1, shape).astype(np.float64)
    if fill == "zeros":
        v = np.zeros(shape)
    elif fill == "ones":
        v = np.ones(shape)
    elif fill == "max":
        v = np.full(shape, hi)
    elif fill == "min":
        v = np.full(shape, lo)
    elif fill == "wide":
        v = rng.uniform(max(lo, -1e4), min(hi, 1e4), shape)
    elif fill == "above1":
        v = rng.uniform(1, 255, shape)
    elif fill in ("nan", "inf", "ninf", "neg_zero", "huge", "tiny"):
        special = {"nan": np.nan, "inf": np.inf, "ninf": -np.inf, "neg_zero": -0.0, "huge": 1e300,
                   "tiny": 5e-324}[fill]
        v = base.copy()
        if v.size:
            v.flat[rng.integers(0, v.size, max(1, v.size // 50))] = special
    else:
        v = base
    if dtype == "complex64":
        v = v + 1j * rng.uniform(0, 1, shape)
    return np.asarray(v)


def _limits(dtype: str) -> tuple[float, float]:
    import numpy as np

    if dtype == "bool":
        return 0, 1
    if dtype in ("float16", "bfloat16", "float32", "float64", "complex64", "object"):
        top = float(np.finfo(np.float16 if dtype == "float16" else np.float32).max)
        return -top, top
    info = np.iinfo(dtype)
    return info.min, info.max


def _cast_numpy(v, dtype: str):
    import numpy as np

    with np.errstate(all="ignore"):
        if dtype == "object":
            return np.asarray(v.astype(object))
        if dtype == "bool":
            return np.asarray(v.real != 0 if np.iscomplexobj(v) else v != 0)
        if np.iscomplexobj(v) and dtype != "complex64":
            v = v.real
        if np.dtype(dtype).kind in "iu":
            lo, hi = _limits(dtype)
            v = np.nan_to_num(np.clip(v, lo, hi), nan=0, posinf=hi, neginf=lo)
        return np.asarray(v.astype(dtype))


def build_array(spec: dict):
    """The numpy array or torch tensor ``spec`` describes, with its layout (views, strides, flags)."""
    import numpy as np
    import torch

    shape, layout = list(spec["shape"]), spec["layout"]
    rank = len(shape)
    if rank == 0 and layout not in ("contig", "readonly", "byteswapped", "inference", "conj"):
        layout = "contig"
    # build a larger or permuted base, then take a view with the described shape
    base_shape, perm = list(shape), list(range(rank))
    axis = spec["seed"] % rank if rank else 0
    if layout in ("step", "offset") and rank:
        base_shape[axis] = shape[axis] * 2 + (layout == "offset")
    elif layout in ("transposed", "permuted") and rank >= 2:
        perm = list(reversed(range(rank))) if layout == "transposed" else \
            [int(p) for p in np.random.default_rng(spec["seed"]).permutation(rank)]
        base_shape = [shape[int(k)] for k in np.argsort(perm)]  # base.permute(perm) has ``shape``
    elif layout == "expanded" and rank and shape[axis] > 0:
        base_shape[axis] = 1
    a = _cast_numpy(_values(spec, base_shape), "float32" if spec["dtype"] == "bfloat16" else spec["dtype"])
    if spec["lib"] == "numpy":
        if layout == "negstride" and rank:
            a = np.flip(a, axis)
        elif layout == "step" and rank:
            a = a[(slice(None),) * axis + (slice(None, None, 2),)]
        elif layout == "fortran":
            a = np.asfortranarray(a)
        elif layout == "transposed" and rank >= 2:
            a = a.transpose(perm)
        elif layout == "broadcast" and rank and shape[0] > 0:
            a = np.broadcast_to(a[:1], shape)
        elif layout == "readonly":
            a.flags.writeable = False
        elif layout == "byteswapped" and a.dtype.kind in "iufc" and a.dtype.itemsize > 1:
            a = a.astype(a.dtype.newbyteorder(">"))
        assert list(a.shape) == shape, (a.shape, shape)
        return a
    dtype = getattr(torch, spec["dtype"])
    x = torch.from_numpy(a.astype(np.int32 if a.dtype == np.uint16 else a.dtype, order="C")).to(dtype)
    if layout == "step" and rank:
        x = x[(slice(None),) * axis + (slice(None, None, 2),)]
    elif layout == "offset" and rank:
        x = x[(slice(None),) * axis + (slice(1, None, 2),)]
    elif layout in ("transposed", "permuted") and rank >= 2:
        x = x.permute(*perm)
    elif layout == "expanded" and rank and shape[axis] > 0:
        x = x.expand(*shape)
    elif layout == "channels_last" and rank == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "inference":
        with torch.inference_mode():
            x = x.clone()
    elif layout == "conj" and x.is_complex():
        x = x.conj()
    if spec.get("requires_grad") and (x.is_floating_point() or x.is_complex()) and layout != "inference":
        x = x.detach().requires_grad_(True)
    assert list(x.shape) == shape, (x.shape, shape)
    return x


def build_video(spec: dict) -> Callable[[], Any]:
    """Arrays are built now (harness code); the returned function makes the library's containers."""
    import vqametric

    kind = spec["type"]
    if kind == "array":
        x = build_array(spec)
        return lambda: x
    if kind == "value":
        return lambda: spec["value"]
    if kind == "rgb":
        data = build_array(spec["data"]) if isinstance(spec["data"], dict) else spec["data"]
        return lambda: vqametric.RGBFrames(data)
    if kind == "yuv":
        y, u, v = (build_array(spec[p]) for p in "yuv")
        kw = {"bit_depth": spec["bit_depth"], "matrix": spec["matrix"], "full_range": spec["full_range"]}
        if spec.get("nv12"):
            import torch

            same = all(isinstance(p, torch.Tensor) for p in (u, v)) and u.shape == v.shape and u.dtype == v.dtype
            uv = torch.stack([u, v], -1) if same else u
            return lambda: vqametric.YUV420Frames.from_nv12(y, uv, **kw)
        return lambda: vqametric.YUV420Frames(y, u, v, **kw)
    makers = [build_video(s) for s in spec["items"]]
    return lambda: (tuple if spec["tuple"] else list)(m() for m in makers)


# -- running one case (worker side) ------------------------------------------------------------
def _where(tb) -> str | None:
    """``vqametric/...py:LINE in FUNC: source`` of the deepest traceback frame inside the package."""
    import vqametric

    pkg = os.path.dirname(os.path.abspath(vqametric.__file__))
    where = None
    for fs in traceback.extract_tb(tb):
        path = os.path.abspath(fs.filename)
        if path.startswith(pkg + os.sep):
            rel = os.path.relpath(path, os.path.dirname(pkg)).replace(os.sep, "/")
            where = f"{rel}:{fs.lineno} in {fs.name}: {(fs.line or '').strip()}"
    return where


def _call(fn: Callable[[], Any], check_scores: bool) -> dict:
    import math

    import vqametric

    t0 = time.perf_counter()
    try:
        out = fn()
    except vqametric.VQAMetricError as e:
        return {"status": "typed", "error": type(e).__name__, "message": str(e)[:500],
                "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as e:
        return {"status": "raw", "error": type(e).__name__, "message": str(e)[:1000], "where": _where(e.__traceback__),
                "traceback": traceback.format_exc()[-6000:], "seconds": round(time.perf_counter() - t0, 3)}
    res = {"status": "ok", "seconds": round(time.perf_counter() - t0, 3)}
    if check_scores:
        scores = [float(r.score) for r in (out if isinstance(out, list) else [out])]
        res["scores"] = [round(s, 4) if math.isfinite(s) else s for s in scores]
        if not all(math.isfinite(s) and 1.0 <= s <= 5.0 for s in scores):
            res["status"] = "bad_score"
    return res


def run_case(case: dict, tmpdir: str | None = None) -> dict:
    """Score one case; ``{"outcome", "calls": {name: result}, ...}``. Runs in a worker (or for replay)."""
    import vqametric

    if case["kind"] == "probe":  # the harness's own check: a raw error, a hang, a crash, a valid input
        import torch

        act = {"raise": lambda: {}["raised on purpose"], "hang": lambda: time.sleep(3600), "crash": os.abort,
               "score": lambda: vqametric.score(torch.rand(2, 3, 16, 16))}[case["action"]]
        res = _call(act, case["action"] == "score")
        return {"outcome": res["status"], "calls": {"score": res}, "seconds": res["seconds"]}
    try:
        if case["kind"] == "file":
            data = case["data"]
            path = os.path.join(tmpdir or tempfile.gettempdir(), f"fuzz-{os.getpid()}-{case['seed_file']}")
            if case["source"] == "path":
                with open(path, "wb") as f:
                    f.write(data)
            src = {"path": lambda: path, "bytes": lambda: data, "fileobj": lambda: io.BytesIO(data)}[case["source"]]
            make, fps = src, None
        else:
            make, fps = build_video(case["video"]), case["fps"]
    except Exception:
        return {"outcome": "harness_error", "calls": {}, "traceback": traceback.format_exc()[-4000:]}

    def info():
        with vqametric.open_clip(make(), fps=fps) as clip:
            return clip.info

    calls = {}
    try:
        if not (case["kind"] == "tensor" and case["video"]["type"] == "list"):
            calls["open_clip.info"] = _call(info, False)
        calls["score"] = _call(lambda: vqametric.score(make(), fps=fps), True)
    finally:
        if case["kind"] == "file" and case["source"] == "path" and os.path.exists(path):
            os.remove(path)
    statuses = [c["status"] for c in calls.values()]
    outcome = next((s for s in ("raw", "bad_score") if s in statuses), calls["score"]["status"])
    return {"outcome": outcome, "calls": calls, "seconds": round(sum(c["seconds"] for c in calls.values()), 3)}


def worker_main(memory_gb: float, threads: int, workdir: str) -> None:
    """Serve cases over stdin/stdout (length-prefixed pickles) until stdin closes; files go to ``workdir``."""
    import resource
    import warnings

    if memory_gb > 0:
        limit = int(memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    sys.path.insert(0, ROOT)
    warnings.simplefilter("ignore")
    import av
    import torch

    import vqametric

    av.logging.set_level(None)
    torch.set_num_threads(threads)
    vqametric.score(torch.rand(4, 3, 32, 32))  # load the default model before the first timed case
    _send(out, {"ready": True})
    inp = sys.stdin.buffer
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        case = pickle.loads(inp.read(struct.unpack("<Q", head)[0]))
        _send(out, run_case(case, workdir))


def _send(f, obj) -> None:
    data = pickle.dumps(obj)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


# -- worker processes (parent side) ------------------------------------------------------------
class Worker:
    """A worker subprocess; :meth:`run` returns a case's result, or a timeout/crash outcome."""

    def __init__(self, workdir: str, name: str, memory_gb: float, threads: int, startup_s: float = 180.0):
        self.workdir, self.memory_gb, self.threads, self.startup_s = workdir, memory_gb, threads, startup_s
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--memory-gb", str(self.memory_gb),
             "--threads", str(self.threads), "--workdir", self.workdir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        msg = self._receive(self.startup_s)
        if not isinstance(msg, dict) or not msg.get("ready"):
            self.stop()
            raise RuntimeError(f"fuzz worker failed to start ({msg}); see {self.log_path}")

    def _receive(self, timeout: float):
        """The next message, or ``"timeout"`` / ``("crash", returncode)``."""
        fd, buf, need, deadline = self.proc.stdout.fileno(), b"", 8, time.monotonic() + timeout
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return "timeout"
            chunk = os.read(fd, max(need - len(buf), 1 << 16))
            if not chunk:
                return ("crash", self.proc.wait())
            buf += chunk
            if need == 8 and len(buf) >= 8:
                need = 8 + struct.unpack("<Q", buf[:8])[0]
        return pickle.loads(buf[8:need])

    def run(self, case: dict, timeout: float) -> dict:
        if self.proc is None:
            self.start()
        t0 = time.perf_counter()
        try:
            _send(self.proc.stdin, case)
            msg = self._receive(timeout)
        except (BrokenPipeError, OSError):
            msg = ("crash", self.proc.wait())
        if isinstance(msg, dict):
            return msg
        self.stop()
        seconds = round(time.perf_counter() - t0, 3)
        if msg == "timeout":
            return {"outcome": "timeout", "calls": {}, "seconds": seconds}
        code = msg[1]
        what = f"signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"exit {code}"
        return {"outcome": "crash", "calls": {}, "crash": what, "seconds": seconds}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None


def run_cases(cases: list[dict], workdir: str, workers: int = 1, timeout: float = 60.0, memory_gb: float = 6.0,
              threads: int = 1, progress: bool = False) -> list[dict]:
    """Results of ``cases`` (same order) from ``workers`` worker subprocesses."""
    import queue
    import threading

    todo: queue.Queue = queue.Queue()
    for i, c in enumerate(cases):
        todo.put(i)
    results: list[dict | None] = [None] * len(cases)
    done = [0]
    lock = threading.Lock()

    def serve(k: int) -> None:
        w = Worker(workdir, f"worker-{k}", memory_gb, threads)
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                results[i] = w.run(cases[i], timeout)
                with lock:
                    done[0] += 1
                    if progress and (done[0] % 50 == 0 or done[0] == len(cases)):
                        print(f"  {done[0]}/{len(cases)} cases", file=sys.stderr, flush=True)
        finally:
            w.stop()

    pool = [threading.Thread(target=serve, args=(k,)) for k in range(max(1, min(workers, len(cases))))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results  # type: ignore[return-value]


# -- fuzz run and report -----------------------------------------------------------------------
def fuzz(files: int, tensors: int, seed: int = 0, workdir: str | None = None, workers: int = 1,
         timeout: float = 60.0, memory_gb: float = 6.0, max_side: int = 256, progress: bool = False) -> dict:
    """Generate and run the cases; returns the report (see :func:`report`)."""
    workdir = workdir or tempfile.mkdtemp(prefix="vqametric-fuzz-")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    cases = []
    if files:
        seeds = make_seeds(os.path.join(workdir, "seeds"))
        rng = random.Random(seed)
        cases += [file_case(seeds, rng.getrandbits(32)) for _ in range(files)]
    if tensors:
        cases += tensor_cases(tensors, seed, max_side)
    results = run_cases(cases, workdir, workers, timeout, memory_gb, progress=progress)
    rep = report(cases, results, workdir)
    rep["config"] = {"files": files, "tensors": tensors, "seed": seed, "workers": workers, "timeout_s": timeout,
                     "memory_gb": memory_gb, "max_side": max_side, "workdir": workdir,
                     "seconds": round(time.perf_counter() - t0, 1)}
    return rep


def _describe(case: dict) -> dict:
    """The case without its bytes (JSON-able)."""
    return {k: v for k, v in case.items() if k != "data"}


def report(cases: list[dict], results: list[dict], workdir: str) -> dict:
    """Counts per kind and outcome, typed error classes, raw exceptions grouped by class and source line,
    slow cases; failing cases are saved under ``workdir/failures`` for ``--replay``."""
    counts = {k: collections.Counter() for k in ("file", "tensor")}
    typed, groups, failures, slow = collections.Counter(), {}, [], []
    fail_dir = os.path.join(workdir, "failures")
    for i, (case, res) in enumerate(zip(cases, results)):
        kind, outcome = case["kind"], res["outcome"]
        counts[kind][outcome] += 1
        for name, c in res["calls"].items():
            if c["status"] == "typed":
                typed[f"{name}: {c['error']}"] += 1
        if res.get("seconds", 0) > SLOW_S and outcome not in FAILURES:
            slow.append({"case": i, "seconds": res["seconds"], "input": _describe(case)})
        if outcome not in FAILURES:
            continue
        os.makedirs(fail_dir, exist_ok=True)
        stem = os.path.join(fail_dir, f"{kind}-{i:05d}")
        saved = {"case": _describe(case), "result": res}
        if kind == "file":
            with open(stem + ".bin", "wb") as f:
                f.write(case["data"])
            saved["data_file"] = os.path.basename(stem) + ".bin"
        with open(stem + ".json", "w") as f:
            json.dump(saved, f, indent=1, default=repr)
        failures.append({"case": i, "kind": kind, "outcome": outcome, "saved": stem + ".json"})
        bad = [(n, c) for n, c in res["calls"].items() if c["status"] in ("raw", "bad_score")]
        if bad:
            name, c = bad[0]
            key = (outcome, c.get("error", ""), c.get("where") or "")
        else:
            name, c, key = None, res, (outcome, res.get("crash", ""), "")
        g = groups.setdefault(key, {"outcome": outcome, "error": key[1], "where": key[2], "count": 0, "kinds":
                                    collections.Counter(), "example": {"call": name, "message": c.get("message"),
                                                                       "saved": stem + ".json",
                                                                       "input": _describe(case)}})
        g["count"] += 1
        g["kinds"][kind] += 1
    for g in groups.values():
        g["kinds"] = dict(g["kinds"])
    return {"counts": {k: {o: v[o] for o in OUTCOMES} for k, v in counts.items()},
            "typed_errors": dict(typed.most_common()),
            "failure_groups": sorted(groups.values(), key=lambda g: -g["count"]),
            "failures": failures, "slow": slow}


def print_summary(rep: dict) -> None:
    print(f"{'input':8s}" + "".join(f"{o:>14s}" for o in OUTCOMES) + f"{'total':>8s}")
    for kind, c in rep["counts"].items():
        print(f"{kind:8s}" + "".join(f"{c[o]:14d}" for o in OUTCOMES) + f"{sum(c.values()):8d}")
    print("\ntyped errors (call: class):")
    for k, n in rep["typed_errors"].items():
        print(f"  {n:6d}  {k}")
    if rep["slow"]:
        print(f"\n{len(rep['slow'])} case(s) took over {SLOW_S:.0f} s, the slowest "
              f"{max(s['seconds'] for s in rep['slow']):.1f} s")
    if rep["failure_groups"]:
        print("\nfailures, grouped by exception class and vqametric source line:")
        for g in rep["failure_groups"]:
            print(f"  {g['count']:5d}  {g['outcome']}  {g['error']}  {g['kinds']}\n"
                  f"         at {g['where'] or '?'}\n         e.g. {str(g['example']['message'])[:200]!r}\n"
                  f"         replay: python {os.path.relpath(__file__)} --replay {g['example']['saved']}")
    else:
        print("\nno failures")


def replay(path: str) -> int:
    """Run one saved case in this process and show its result (with the traceback of a raw exception)."""
    sys.path.insert(0, ROOT)
    with open(path) as f:
        saved = json.load(f)
    case = saved["case"]
    if case["kind"] == "file":
        with open(os.path.join(os.path.dirname(path), saved["data_file"]), "rb") as f:
            case["data"] = f.read()
    print(json.dumps(_describe(case), indent=1, default=repr))
    res = run_case(case)
    for name, c in res["calls"].items():
        print(f"\n{name}: {c['status']} {c.get('error', '')} {c.get('message', '')}")
        if c.get("traceback"):
            print(c["traceback"])
    return int(res["outcome"] in FAILURES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=3000, help="mutated files to score")
    ap.add_argument("--tensors", type=int, default=2000, help="Hypothesis tensor inputs to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON report here")
    ap.add_argument("--workdir", help="seed corpus, worker logs and failing cases (default: a new temp folder)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of each worker (0: none)")
    ap.add_argument("--max-side", type=int, default=4096, help="longest tensor side Hypothesis draws")
    ap.add_argument("--replay", help="run one saved failing case (a .json under <workdir>/failures) and exit")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.memory_gb, args.threads, args.workdir or tempfile.gettempdir())
        return 0
    if args.replay:
        return replay(args.replay)
    rep = fuzz(args.files, args.tensors, args.seed, args.workdir, args.workers, args.timeout, args.memory_gb,
               args.max_side, progress=True)
    print_summary(rep)
    cfg = rep["config"]
    print(f"\n{cfg['seconds']:.0f} s; seed corpus, worker logs and failing cases in {cfg['workdir']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rep, f, indent=1, default=repr)
    return int(any(c[o] for c in rep["counts"].values() for o in FAILURES))


if __name__ == "__main__":
    sys.exit(main())
