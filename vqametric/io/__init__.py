"""Video input: every supported source becomes a :class:`Clip` with metadata and frame access."""
from .clip import Clip, ClipInfo, TensorClip, iter_videos, open_clip
from .frames import Frames, RGBFrames, YUV420Frames

__all__ = ["Clip", "ClipInfo", "TensorClip", "open_clip", "iter_videos", "Frames",
           "RGBFrames", "YUV420Frames"]
