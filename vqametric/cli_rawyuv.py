"""``vqametric score clip.yuv --size WxH --pix-fmt F --fps R``: raw YUV files on the command line."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from .errors import InvalidVideoInput

# io.rawyuv.PIX_FMTS, spelled out so that building the parser does not import torch (a test checks they agree)
PIX_FMTS = ("yuv420p", "yuv420p10le", "nv12")


def add_raw_yuv_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--size``/``--pix-fmt``/``--matrix``/``--full-range`` to a command whose ``func`` scores
    paths with ``fps=args.fps``; with ``--size``, its ``.yuv`` paths open as that raw format."""
    group = parser.add_argument_group("raw YUV input (.yuv files: also pass --fps R)")
    group.add_argument("--size", default=None, metavar="WxH", help="frame size of .yuv files")
    group.add_argument("--pix-fmt", choices=PIX_FMTS, default="yuv420p", help="pixel format of .yuv files")
    group.add_argument("--matrix", choices=["bt601", "bt709", "bt2020"], default=None,
                       help="colour matrix of .yuv files (default: bt709 from 720 lines up, bt601 below)")
    group.add_argument("--full-range", action="store_true", help=".yuv samples use the full range")
    parser.set_defaults(func=_with_raw_format(parser.get_default("func")))


def _with_raw_format(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if args.size is None:
            return func(args)
        from .io.rawyuv import parse_size, raw_yuv_format  # torch: only when .yuv files are scored
        try:
            width, height = parse_size(args.size)
        except InvalidVideoInput as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        with raw_yuv_format(width, height, args.pix_fmt, args.matrix, args.full_range):
            return func(args)
    return run


def extend(sub: Any) -> None:
    """Raw YUV options for ``vqametric score``."""
    add_raw_yuv_options(sub.choices["score"])
