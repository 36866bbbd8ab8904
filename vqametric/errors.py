"""Typed errors. Every message says what was wrong and what to do about it.

All errors derive from :class:`VQAMetricError`; input and option problems are also ``ValueError`` and
missing files/weights are also ``FileNotFoundError`` so that generic handlers keep working.
"""
from __future__ import annotations


class VQAMetricError(Exception):
    """Base class of every error vqametric raises on purpose."""


class InvalidVideoInput(VQAMetricError, ValueError):
    """The input is not a video vqametric can score (wrong type, rank, dtype, range, NaN/Inf, empty)."""


class VideoDecodeError(VQAMetricError, RuntimeError):
    """A container or stream could not be opened or decoded (truncated, corrupt, not a video)."""


class FrameTooLarge(InvalidVideoInput):
    """The frames are larger than the configured pixel limit (``max_pixels``); nothing was decoded."""


class WeightsNotFound(VQAMetricError, FileNotFoundError):
    """A model's weights file is missing or is not in a safe format (ONNX or safetensors)."""


class ModelNotFound(VQAMetricError, KeyError):
    """No model card is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BackendUnavailable(VQAMetricError, ImportError):
    """An optional dependency a backend needs (onnxruntime, triton, transformers) is not installed."""


class InvalidOption(VQAMetricError, ValueError):
    """An option has a value vqametric cannot use (device, runtime, dtype, generation or model options)."""


class SamplingError(VQAMetricError, ValueError):
    """A sampling configuration cannot be applied to a clip (for example zero frames requested)."""


class InvalidBaseline(VQAMetricError, ValueError):
    """A baseline or result file cannot be compared: unreadable, another schema, or made with
    another model (name, version or weights hash)."""


def parse_device(device: object, default: str = "cpu") -> "torch.device":
    """``device`` (``None``, a string such as ``"cpu"``/``"cuda:1"``, or a ``torch.device``) as a
    ``torch.device``; :class:`InvalidOption` naming the accepted forms otherwise."""
    import torch  # imported by every caller already; kept local so this module stays dependency-free

    if device is None:
        device = default
    try:
        return device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise InvalidOption(f"device={device!r} is not a device torch knows; use 'cpu', 'cuda' or 'cuda:N'") from e
