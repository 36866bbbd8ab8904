"""Video input: every supported source becomes a :class:`Clip` with metadata and frame access.

Names load their module (and torch) on first use.
"""
from ..lazy import lazy_getattr

__all__ = ["Clip", "ClipInfo", "TensorClip", "open_clip", "iter_videos", "Frames",
           "RGBFrames", "YUV420Frames"]
__getattr__ = lazy_getattr(__name__, {"Clip": "clip", "ClipInfo": "clip", "TensorClip": "clip", "open_clip": "sources",
                                      "iter_videos": "clip", "Frames": "frames", "RGBFrames": "frames",
                                      "YUV420Frames": "frames"}, globals())
