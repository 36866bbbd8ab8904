"""Checks on a video source before PyAV opens it, and what the decoder needs to know about a
stream beyond its header (HEVC temporal sub-layers, for skipping non-reference pictures)."""
from __future__ import annotations

import io
import os
from typing import BinaryIO

from ..errors import InvalidVideoInput


def hevc_sub_layers(extradata: bytes | None) -> int:
    """``sps_max_sub_layers_minus1 + 1`` of the first SPS in HEVC ``extradata`` (``hvcC`` box or
    Annex B start codes); 0 when there is none (parameter sets only in band) or it is unreadable.

    With one temporal sub-layer a "sub-layer non-reference" picture (what FFmpeg's NONREF skips) is
    referenced by no picture at all; with several, pictures of higher sub-layers may reference it.
    """
    data = bytes(extradata or b"")
    nals: list[bytes] = []
    try:
        if len(data) > 22 and data[0] == 1:  # hvcC: 22-byte header, then arrays of NAL units
            pos = 23
            for _ in range(data[22]):
                count = int.from_bytes(data[pos + 1:pos + 3], "big")
                pos += 3
                for _ in range(count):
                    size = int.from_bytes(data[pos:pos + 2], "big")
                    nals.append(data[pos + 2:pos + 2 + size])
                    pos += 2 + size
        else:
            nals = data.split(b"\x00\x00\x01")[1:]
    except IndexError:  # pragma: no cover - damaged extradata
        return 0
    for nal in nals:
        if len(nal) >= 3 and (nal[0] >> 1) & 0x3F == 33:  # SPS; byte 2: vps id (4 bits), max_sub_layers_minus1 (3)
            return ((nal[2] >> 1) & 0x7) + 1
    return 0


def check_path(path: str) -> None:
    """:class:`InvalidVideoInput` naming the fix unless ``path`` is a non-empty regular file."""
    if not os.path.exists(path):
        raise InvalidVideoInput(f"no such file: {path!r}; check the path (it is resolved against "
                                f"the current directory {os.getcwd()!r})")
    if os.path.isdir(path):
        raise InvalidVideoInput(f"{path!r} is a directory; pass a video file (the CLI accepts several "
                                "paths, e.g. `vqametric score dir/*.mp4`)")
    if not os.path.isfile(path):
        raise InvalidVideoInput(f"{path!r} is not a regular file (a pipe, socket or device); save the video to a "
                                "file, or read the stream into bytes and pass those")
    if os.path.getsize(path) == 0:
        raise InvalidVideoInput(f"{path!r} is empty (0 bytes); the write or download probably failed: "
                                "write or download it again")


def check_file_object(f: BinaryIO, name: str) -> None:
    """:class:`InvalidVideoInput` unless ``f`` is a seekable, non-empty binary file object."""
    if isinstance(f, io.TextIOBase):
        raise InvalidVideoInput(f"{name} is a text-mode file object; open the video in binary mode: open(path, 'rb')")
    try:
        size = f.seek(0, io.SEEK_END)
    except (AttributeError, OSError, ValueError) as e:
        raise InvalidVideoInput(f"cannot seek in {name} ({e}); pass a seekable binary file object, or read "
                                "the stream into bytes first") from e
    if size == 0:
        raise InvalidVideoInput(f"{name} is empty (0 bytes); pass a file object holding the video")
