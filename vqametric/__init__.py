"""vqametric: no-reference video quality assessment for video pipelines.

>>> import vqametric
>>> vqametric.list_models()                                      # doctest: +SKIP
>>> result = vqametric.score("clip.mp4")                         # doctest: +SKIP
>>> result.score, result.dominant_distortion                     # doctest: +SKIP
"""
__version__ = "0.1.0"

from .errors import (BackendUnavailable, FrameTooLarge, InvalidOption, InvalidVideoInput, ModelNotFound,  # noqa: F401
                     SamplingError, VideoDecodeError, VQAMetricError, WeightsNotFound)

from .lazy import lazy_getattr  # noqa: E402

# Public names and the module that defines each. They are imported on first use (PEP 562), so that
# `import vqametric` and the command line's --version/--help/models start without loading torch.
_LAZY = {
    "score": "functional", "score_batch": "functional", "explain": "functional",
    "Clip": "io", "ClipInfo": "io", "RGBFrames": "io", "YUV420Frames": "io", "open_clip": "io",
    "VQAThinkerMetric": "metric", "create_metric": "metric",
    "DEFAULT_MODEL": "registry", "ModelCard": "registry", "get_card": "registry", "list_models": "registry",
    "register_model": "registry",
    "QualityResult": "result", "SegmentScore": "result",
    "SamplingConfig": "sampling", "SamplingPlan": "sampling", "make_plan": "sampling",
    "QualityReward": "reward",
}

__all__ = [
    "__version__", "VQAThinkerMetric", "create_metric", "list_models", "register_model", "get_card", "ModelCard",
    "DEFAULT_MODEL", "score", "score_batch", "explain", "QualityResult", "SegmentScore", "open_clip", "Clip",
    "ClipInfo", "RGBFrames", "YUV420Frames", "SamplingConfig", "SamplingPlan", "make_plan", "VQAMetricError",
    "InvalidVideoInput", "FrameTooLarge", "InvalidOption", "VideoDecodeError", "WeightsNotFound", "ModelNotFound",
    "BackendUnavailable", "SamplingError", "QualityReward",
]


_SUBMODULES = ("eval", "functional", "metric", "registry", "result", "io", "sampling", "backends", "demo", "reward")
__getattr__ = lazy_getattr(__name__, {**_LAZY, **{m: f"{m}:" for m in _SUBMODULES}}, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
