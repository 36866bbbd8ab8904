"""Video input: every supported source becomes a :class:`Clip` with metadata and frame access."""
from .clip import Clip, ClipInfo, TensorClip, batch_size, iter_videos, open_clip
from .frames import Frames, RGBFrames, YUV420Frames

__all__ = ["Clip", "ClipInfo", "TensorClip", "open_clip", "iter_videos", "batch_size", "Frames",
           "RGBFrames", "YUV420Frames"]
