"""Typed errors. Every message says what was wrong and what to do about it.

All errors derive from :class:`VQAMetricError`; input problems are also ``ValueError`` and
missing files/weights are also ``FileNotFoundError`` so that generic handlers keep working.
"""
from __future__ import annotations


class VQAMetricError(Exception):
    """Base class of every error vqametric raises on purpose."""


class InvalidVideoInput(VQAMetricError, ValueError):
    """The input is not a video vqametric can score (wrong type, rank, dtype, range, NaN/Inf, empty)."""


class VideoDecodeError(VQAMetricError, RuntimeError):
    """A container or stream could not be opened or decoded (truncated, corrupt, not a video)."""


class WeightsNotFound(VQAMetricError, FileNotFoundError):
    """A model's weights file is missing or is not in a safe format (ONNX or safetensors)."""


class ModelNotFound(VQAMetricError, KeyError):
    """No model card is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BackendUnavailable(VQAMetricError, ImportError):
    """An optional dependency a backend needs (onnxruntime, triton, transformers) is not installed."""


class SamplingError(VQAMetricError, ValueError):
    """A sampling configuration cannot be applied to a clip (for example zero frames requested)."""
