"""Input limits: refuse frames too large to score before any picture is decoded.

Scoring memory grows with the frame size (a decoded 4:2:0 frame takes 1.5 bytes per pixel, and
preprocessing converts one frame at a time to floating-point RGB, 12 bytes per pixel; 8K takes about
1.4 GB in all), so a small
file of huge frames (16 black 12000x12000 frames compress to 424 KB) could otherwise ask for
gigabytes. Frames above ``max_pixels`` (width x height) raise :class:`FrameTooLarge`.

The default, :data:`DEFAULT_MAX_PIXELS`, admits 8K (7680x4320 and DCI 8192x4320). Raise it per
call (``vqametric.score(..., max_pixels=N)``, ``vqametric score --max-pixels N``) or for the
process with the environment variable ``VQAMETRIC_MAX_PIXELS``.
"""
from __future__ import annotations

import os

from ..errors import FrameTooLarge, InvalidOption

DEFAULT_MAX_PIXELS = 36_000_000
ENV_VAR = "VQAMETRIC_MAX_PIXELS"


def max_pixels(value: int | None = None) -> int:
    """The limit in force: ``value`` if given, else ``$VQAMETRIC_MAX_PIXELS``, else the default."""
    source = "max_pixels"
    if value is None:
        raw = os.environ.get(ENV_VAR)
        if raw is None:
            return DEFAULT_MAX_PIXELS
        source, value = ENV_VAR, raw
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if isinstance(value, (bool, float)) or limit < 1:
        raise InvalidOption(f"{source} must be a positive whole number of pixels, got {value!r}")
    return limit


def check_frame_size(clip, limit: int | None = None) -> None:
    """Raise :class:`FrameTooLarge` if ``clip``'s frames exceed the limit (see :func:`max_pixels`)."""
    width, height = clip.frame_size
    allowed = max_pixels(limit)
    if width * height > allowed:
        name = getattr(clip, "name", None) or clip.info.source
        raise FrameTooLarge(
            f"{name} has {width}x{height} frames ({width * height:,} pixels), above the limit of {allowed:,} "
            f"pixels; downscale it first (e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4), or raise the limit with "
            f"max_pixels= / --max-pixels / {ENV_VAR} if the machine has the memory (scoring takes about 45 "
            "bytes per pixel of one frame)")
