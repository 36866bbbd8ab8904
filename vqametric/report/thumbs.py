"""Thumbnails of a clip's segments: frames decoded with :func:`vqametric.open_clip`, converted to RGB
(:func:`vqametric.sampling.reference.frames_to_rgb`), downscaled and encoded as ``data:`` URIs
(JPEG through PyAV, or PNG written here with zlib when no JPEG encoder is available)."""
from __future__ import annotations

import base64
from fractions import Fraction
import struct
import zlib
from typing import Any, Sequence

from ..result import QualityResult, SegmentScore

WIDTH = 160


def segment_frame(result: QualityResult, seg: SegmentScore) -> int:
    """The frame shown for ``seg``: the middle one of the planned frames inside it (the scorer's
    ``sampling.frame_indices``), else the segment's middle frame."""
    planned = [i for i in result.sampling.get("frame_indices") or [] if seg.start_frame <= i < seg.end_frame]
    if planned:
        return int(planned[len(planned) // 2])
    return max((seg.start_frame + seg.end_frame - 1) // 2, 0)


def png(rgb: Any) -> bytes:
    """A PNG file of a uint8 ``(H, W, 3)`` array (8-bit RGB, no filter)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def jpeg(rgb: Any) -> bytes | None:
    """A JPEG file of a uint8 ``(H, W, 3)`` array through PyAV's MJPEG encoder (quantiser 2-6); None
    when it is unavailable."""
    try:
        import av  # heavy: PyAV, only for thumbnails

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, "yuvj420p"
        ctx.options = {"qmin": "2", "qmax": "6"}
        ctx.time_base = Fraction(1, 25)
        data = b"".join(bytes(p) for p in ctx.encode(frame.reformat(format="yuvj420p")))
        data += b"".join(bytes(p) for p in ctx.encode(None))
        return data if data[:2] == b"\xff\xd8" else None
    except Exception:  # noqa: BLE001 - any encoder trouble: fall back to PNG
        return None


def data_uri(rgb: Any) -> str:
    """``data:image/jpeg;base64,...`` (or ``image/png``) of a uint8 ``(H, W, 3)`` array."""
    body = jpeg(rgb)
    kind = "jpeg"
    if body is None:
        body, kind = png(rgb), "png"
    return f"data:image/{kind};base64," + base64.b64encode(body).decode("ascii")


def thumbnails(path: str, indices: Sequence[int], width: int = WIDTH) -> list[str]:
    """Frames ``indices`` of the file at ``path`` as data URIs, ``width`` pixels wide (never upscaled).
    Raises what decoding raises."""
    import torch  # heavy: torch

    from ..io import open_clip  # heavy: torch and PyAV
    from ..sampling.reference import frames_to_rgb, resize  # heavy: torch

    with open_clip(path) as clip:
        n = clip.info.num_frames
        frames = clip.read([min(max(int(i), 0), n - 1) for i in indices])
    out = []
    for t in range(len(indices)):
        x = frames_to_rgb(frames, t, t + 1)  # (1, 3, H, W) in [0, 1]
        h, w = x.shape[-2:]
        if w > width:
            x = resize(x, (max(1, round(h * width / w)), width))
        rgb = (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        out.append(data_uri(rgb))
    return out


__all__ = ["segment_frame", "png", "jpeg", "data_uri", "thumbnails", "WIDTH"]
