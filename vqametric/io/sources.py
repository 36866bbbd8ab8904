"""``open_clip(source)``: every supported input as a :class:`~vqametric.io.clip.Clip`.

A path, bytes or a binary file object becomes a :class:`~vqametric.io.decode.FileClip` (a
headerless ``.yuv`` path a :class:`~vqametric.io.rawyuv.RawYUV`); a numpy ``(T, H, W, 3)`` array,
a torch ``(T, 3, H, W)`` tensor, :class:`~vqametric.io.frames.RGBFrames` or
:class:`~vqametric.io.frames.YUV420Frames` a :class:`~vqametric.io.clip.TensorClip`; a clip is
returned as it is.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch

from ..errors import InvalidVideoInput
from .clip import Clip, TensorClip
from .decode import FileClip
from .frames import RGBFrames, YUV420Frames
from .rawyuv import is_raw_yuv_path, open_raw_path
from .tensors import rgb_from_numpy, rgb_from_torch


def open_clip(source: Any, *, fps: float | None = None) -> Clip:
    """Open any supported input as a :class:`Clip`.

    ``fps`` applies to in-memory inputs (default 30) and to headerless YUV files; other files
    carry their own timing. A binary file object is read from its start (position 0), whatever
    its current position. Raises :class:`~vqametric.errors.InvalidVideoInput` for an input of
    another type, empty bytes or a missing file, and
    :class:`~vqametric.errors.VideoDecodeError` for a file that is not a readable video.
    """
    if isinstance(source, Clip):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return open_raw_path(path, fps) if is_raw_yuv_path(path) else FileClip(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InvalidVideoInput("the video bytes are empty (0 bytes); pass the file's contents")
        return FileClip(io.BytesIO(bytes(source)), name="<bytes>")
    if hasattr(source, "read") and hasattr(source, "seek"):
        return FileClip(source, name=getattr(source, "name", "<file object>"))
    if isinstance(source, np.ndarray):
        return TensorClip(rgb_from_numpy(source), fps, source=f"<numpy {source.shape}>")
    if isinstance(source, torch.Tensor):
        return TensorClip(rgb_from_torch(source), fps, source=f"<tensor {tuple(source.shape)}>")
    if isinstance(source, (YUV420Frames, RGBFrames)):
        return TensorClip(source, fps, source=f"<{type(source).__name__}>")
    raise InvalidVideoInput(
        f"cannot read a video from {type(source).__name__}; pass a path, bytes, a binary file object, "
        "a numpy (T, H, W, 3) array, a torch (T, 3, H, W) tensor or YUV420Frames")
