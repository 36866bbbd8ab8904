"""Heads of every architecture: build, save and load them.

* architectures 2-5: :class:`FastHead`, the compact head (:mod:`vqametric.backends.compact_head`);
* architecture 6: :class:`~vqametric.backends.fusion_head.FusionHead`, a pretrained backbone fused
  with the compact head (:mod:`vqametric.backends.fusion_head`).

:func:`build_head` makes a new head of a :class:`HeadConfig`'s architecture and
:func:`head_vocabulary` names its outputs, distortions and attribution classes. Weights are stored
as safetensors with the head and sampling configuration in the file's metadata, so a weights file
is self-describing (the format: :mod:`vqametric.weightfile`): :func:`save_head` writes one,
:func:`load_head` reads one back, :func:`load_trainable_head` a head to fine-tune. The compact head's
names (:class:`FastHead`, :class:`HeadConfig`, ``DISTORTIONS``, ...) are importable from here too.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import torch
import torch.nn as nn

from ..errors import WeightsNotFound
from ..registry import get_card
from ..sampling.plan import SamplingConfig
from ..weightfile import FORMAT_KEY, encode_head_metadata, read_head_metadata
from .compact_head import (ARCH, ATTRIBUTION_CLASSES, BLOCKINESS_ARCHS, COLOUR_STATS, DISTORTIONS,  # noqa: F401
                           FRAGMENT_GRID, NSS_FEATURES, OUTPUT_NAMES, STILL_ARCHS, SUPPORTED_ARCHS, TEMPORAL_STATS,
                           FastHead, HeadConfig)
from .fusion_head import ATTRIBUTION_CLASSES_V6, DISTORTIONS_V6, FUSION_ARCH, OUTPUT_NAMES_V6, FusionHead

def head_vocabulary(arch: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(output names, distortions, attribution classes)`` of a head architecture: architecture 6
    adds the outputs ``spatial_score`` and ``motion`` and the distortions ``black`` and ``freeze``."""
    if arch == FUSION_ARCH:
        return OUTPUT_NAMES_V6, DISTORTIONS_V6, ATTRIBUTION_CLASSES_V6
    return OUTPUT_NAMES, DISTORTIONS, ATTRIBUTION_CLASSES


def build_head(config: HeadConfig) -> nn.Module:
    """A new head of ``config.arch``: :class:`FastHead` (architectures 2-5) or
    :class:`~vqametric.backends.fusion_head.FusionHead` (6)."""
    if config.arch == FUSION_ARCH:
        return FusionHead(config)
    return FastHead(config)


def save_head(head: FastHead, path: str | os.PathLike, sampling: SamplingConfig | None = None,
              name: str = "custom-head", version: str = "0") -> None:
    """Write ``head`` to a safetensors file with its configuration in the metadata."""
    from safetensors.torch import save_file  # heavy: safetensors (torch tensors), needed only to write

    sampling = sampling or head.sampling_config()
    meta = {FORMAT_KEY: encode_head_metadata(asdict(head.config), sampling.to_dict(), name, version)}
    state = {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
    save_file(state, os.fspath(path), metadata=meta)


def load_head(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[FastHead, dict[str, Any]]:
    """Load a :class:`FastHead` from safetensors; returns ``(head in eval mode, metadata)``."""
    from safetensors.torch import load_file  # heavy: safetensors (torch tensors), needed only to read

    meta = read_head_metadata(path)
    head = build_head(HeadConfig.from_dict(meta["head"]))
    state = load_file(os.fspath(path), device=str(map_location))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        raise WeightsNotFound(f"{path} does not match the head architecture in its metadata ({len(diff)} "
                              f"tensor(s) differ, e.g. {diff[:2]}); re-export it with save_head")
    head.load_state_dict(state)
    return head.to(map_location).eval(), meta


def load_trainable_head(spec: str | os.PathLike) -> tuple[FastHead, dict[str, Any]]:
    """A compact head to fine-tune: ``spec`` is a ``.safetensors`` head file or the name of a
    registered fast-head model (e.g. ``"vqametric-fast-0.5"``, whose torch weights are used).
    Returns ``(head in eval mode, metadata)``. Heads of architecture 6 are refused (their readouts
    have their own recipe, ``vqametric.train.fast.fusion_trainer``).

    Raises :class:`WeightsNotFound` for an ONNX file (it holds no trainable weights; the error
    names the ``.safetensors`` file beside it) or a model that is not a fast head, and
    :class:`~vqametric.errors.ModelNotFound` for an unknown name."""
    path = os.fspath(spec)
    if path.endswith(".onnx"):
        sibling = path[: -len(".onnx")] + ".safetensors"
        fix = f"pass {sibling} instead" if os.path.isfile(sibling) else \
            "pass the head's .safetensors file (save_head writes one)"
        raise WeightsNotFound(f"{path} is an ONNX head, which cannot be trained further; {fix}")
    if not path.endswith(".safetensors"):
        card = get_card(path)       # a registered name (or another weights path, which it rejects clearly)
        if card.backend != "fast-head":
            raise WeightsNotFound(f"model {card.name!r} is a {card.backend} model, not a fast head; "
                                  "only fast heads can be fine-tuned here")
        path = card.weights_path("torch")
    arch = HeadConfig.from_dict(read_head_metadata(path)["head"]).arch
    if arch == 6:
        raise WeightsNotFound(f"{spec} is head architecture 6 (frozen ImageNet features and the compact head, "
                              "with trained readouts): retrain its readouts with `python -m "
                              "vqametric.train.fast.fusion_trainer`, or fine-tune the compact head vqametric-fast-0.5")
    return load_head(path)
