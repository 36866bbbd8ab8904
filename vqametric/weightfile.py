"""The head weight-file format: a ``.safetensors`` or ``.onnx`` file whose metadata entry
:data:`FORMAT_KEY` holds, as JSON, ``{"head": HeadConfig fields, "sampling": SamplingConfig fields,
"name", "version"}``, so that a weights file describes itself.

Reading the metadata needs no torch: the model registry reads it to make a card from a path
(:func:`vqametric.registry.card_from_weights`), the backends to build the head
(:func:`vqametric.backends.head.load_head`, :class:`vqametric.backends.onnx_runtime.OnnxHead`).
"""
from __future__ import annotations

import json
import os
from typing import Any

from safetensors import safe_open

from .errors import WeightsNotFound

FORMAT_KEY = "vqametric.head"


def encode_head_metadata(head: dict[str, Any], sampling: dict[str, Any], name: str, version: str) -> str:
    """The JSON stored under :data:`FORMAT_KEY` for a head of configuration ``head`` (the
    ``HeadConfig`` fields) sampled by ``sampling`` (``SamplingConfig.to_dict()``)."""
    return json.dumps({"head": head, "sampling": sampling, "name": name, "version": version})


def read_head_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``{"head", "sampling", "name", "version"}`` metadata of a head weights file."""
    path = os.fspath(path)
    _require_file(path)
    if path.endswith(".onnx"):
        import onnx  # optional dependency (the onnx extra); only ONNX heads need it

        model = onnx.load(path, load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
    else:
        try:
            with safe_open(path, "pt") as f:
                props = f.metadata() or {}
        except Exception as e:
            raise WeightsNotFound(f"{path} is not a readable safetensors file ({e}); weights load only from "
                                  "safetensors or ONNX, never from pickle") from e
    if FORMAT_KEY not in props:
        raise WeightsNotFound(f"{path} carries no vqametric head metadata; save heads with "
                              "vqametric.backends.save_head or export_onnx")
    return json.loads(props[FORMAT_KEY])


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise WeightsNotFound(f"weights file {path!r} does not exist; pass the path of a .onnx or "
                              ".safetensors head (create one with vqametric.backends.save_head or export_onnx)")
    if path.endswith((".pt", ".pth", ".bin", ".ckpt", ".pkl")):
        raise WeightsNotFound(f"{path!r} is a pickle checkpoint; vqametric loads only safetensors or ONNX. "
                              "Convert it: torch.load it yourself if you trust it, then save_head(...)")
