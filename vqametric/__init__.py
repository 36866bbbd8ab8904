"""vqametric: no-reference video quality assessment for video pipelines.

>>> import vqametric
>>> vqametric.list_models()                                      # doctest: +SKIP
>>> result = vqametric.score("clip.mp4", model="head.onnx")      # doctest: +SKIP
>>> result.score, result.dominant_distortion                     # doctest: +SKIP
"""
__version__ = "0.1.0"

from .errors import (BackendUnavailable, InvalidOption, InvalidVideoInput, ModelNotFound, SamplingError, VideoDecodeError,
                     VQAMetricError, WeightsNotFound)
from .functional import explain, score, score_batch
from .io import Clip, ClipInfo, RGBFrames, YUV420Frames, open_clip
from .metric import VQAThinkerMetric, create_metric
from .registry import DEFAULT_MODEL, ModelCard, get_card, list_models, register_model
from .result import QualityResult, SegmentScore
from .sampling import SamplingConfig, SamplingPlan, make_plan

__all__ = [
    "__version__", "VQAThinkerMetric", "create_metric", "list_models", "register_model", "get_card", "ModelCard",
    "DEFAULT_MODEL", "score", "score_batch", "explain", "QualityResult", "SegmentScore", "open_clip", "Clip",
    "ClipInfo",
    "RGBFrames", "YUV420Frames", "SamplingConfig", "SamplingPlan", "make_plan", "VQAMetricError",
    "InvalidVideoInput", "InvalidOption", "VideoDecodeError", "WeightsNotFound", "ModelNotFound", "BackendUnavailable",
    "SamplingError",
]


def __getattr__(name: str):
    """``vqametric.eval`` is imported on first use (it loads the manifest and statistics code)."""
    if name == "eval":
        import importlib
        return importlib.import_module(".eval", __name__)
    raise AttributeError(f"module 'vqametric' has no attribute {name!r}")
