"""Finding and reading reasoning-model checkpoints: safetensors only, no remote code.

A checkpoint is a folder with ``config.json``, the weights as ``model.safetensors`` or as shards
listed in ``model.safetensors.index.json``, and the tokenizer files. It is named by

* a local folder path: nothing is downloaded;
* a Hugging Face Hub id ``owner/name``: downloaded on first use (safetensors, json and tokenizer
  files only; pickle weights are never fetched) into the usual Hub cache, then read from there.

Pickle formats (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``) can run code when loaded and are
refused with :class:`~vqametric.errors.WeightsNotFound`.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

import torch
from safetensors import safe_open

from ...errors import BackendUnavailable, WeightsNotFound

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
#: Files fetched from the Hub: never a pickle.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not os.path.exists(name)


def _refuse_pickle(path: str) -> None:
    raise WeightsNotFound(
        f"{os.path.basename(path)} is a pickle checkpoint; vqametric loads only safetensors (a pickle file can "
        "run code when it is opened). Convert it once with `safetensors.torch.save_file` in a trusted "
        "environment, or use the model's .safetensors release")


def weight_files(folder: str) -> list[str]:
    """The safetensors files of a checkpoint folder (shards in index order)."""
    index = os.path.join(folder, INDEX_FILE)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map", {})
        shards = list(dict.fromkeys(weight_map.values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
        if missing:
            raise WeightsNotFound(f"checkpoint {folder} lists shard(s) {missing[:3]} in {INDEX_FILE} but they are "
                                  "missing; re-download the checkpoint")
        return [os.path.join(folder, s) for s in shards]
    single = os.path.join(folder, SINGLE_FILE)
    if os.path.isfile(single):
        return [single]
    found = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if found:
        return [os.path.join(folder, f) for f in found]
    pickles = sorted(f for f in os.listdir(folder) if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        _refuse_pickle(os.path.join(folder, pickles[0]))
    raise WeightsNotFound(f"no .safetensors weights in {folder}; expected {SINGLE_FILE} or {INDEX_FILE}")


def resolve_checkpoint(checkpoint: str | os.PathLike | None, default_hub_id: str | None = None,
                       model_name: str = "model") -> str:
    """A local checkpoint folder for ``checkpoint`` (a folder or a Hub id).

    With ``checkpoint=None`` the card's ``default_hub_id`` is used only if it is already in the local
    Hub cache: vqametric never goes to the network unless it was handed a Hub id.
    """
    if checkpoint is None:
        if default_hub_id is None:
            raise WeightsNotFound(f"model {model_name!r} needs checkpoint=PATH (a folder with config.json and "
                                  ".safetensors weights) or checkpoint='owner/name' (a Hugging Face Hub id)")
        try:
            return _hub_snapshot(default_hub_id, local_only=True)
        except WeightsNotFound:
            raise WeightsNotFound(
                f"the weights of {model_name!r} are not on this machine. Pass checkpoint={default_hub_id!r} to "
                "download them from the Hugging Face Hub (see docs/reasoning.md for the size), or "
                "checkpoint=PATH for a local copy") from None
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        weight_files(path)  # fails early on pickle-only or empty folders
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise WeightsNotFound(f"checkpoint folder {path} has no config.json")
        return path
    if os.path.isfile(path):
        if path.endswith(PICKLE_SUFFIXES):
            _refuse_pickle(path)
        raise WeightsNotFound(f"{path} is a file; pass the checkpoint folder (with config.json, tokenizer and "
                              ".safetensors weights) instead")
    if is_hub_id(path):
        return _hub_snapshot(path, local_only=False)
    raise WeightsNotFound(f"checkpoint {path!r} is neither a folder on this machine nor a Hub id 'owner/name'")


def _hub_snapshot(repo_id: str, local_only: bool) -> str:
    try:
        from huggingface_hub import snapshot_download  # optional: huggingface_hub (comes with transformers)
    except ImportError as e:  # pragma: no cover - huggingface_hub comes with transformers
        raise BackendUnavailable("downloading from the Hub needs huggingface_hub: pip install 'vqametric[lmm]'") from e
    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=local_only)
    except Exception as e:  # offline, unknown repo, gated repo ...
        where = "in the local Hub cache" if local_only else "on the Hugging Face Hub"
        raise WeightsNotFound(f"could not get {repo_id!r} {where}: {type(e).__name__}: {e}") from e
    try:
        weight_files(folder)
    except WeightsNotFound as e:
        raise WeightsNotFound(f"{repo_id!r} has no safetensors weights ({e}); vqametric does not load pickle "
                              "checkpoints") from None
    return folder


def read_json(folder: str, name: str) -> dict[str, Any] | None:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_config(folder: str) -> dict[str, Any]:
    cfg = read_json(folder, "config.json")
    if cfg is None:
        raise WeightsNotFound(f"checkpoint folder {folder} has no config.json")
    return cfg


def iter_tensors(folder: str, device: str | torch.device = "cpu") -> Iterator[tuple[str, "callable"]]:
    """``(key, load)`` for every tensor of the checkpoint; ``load()`` reads it onto ``device``.
    Shards are opened one at a time, so only the tensors being used are in memory."""
    for path in weight_files(folder):
        with safe_open(path, framework="pt", device=str(device)) as f:
            for key in f.keys():
                yield key, (lambda f=f, key=key: f.get_tensor(key))


def tensor_index(folder: str) -> dict[str, tuple[str, list[int]]]:
    """``key -> (dtype name, shape)`` from the safetensors headers, without reading any tensor data."""
    out: dict[str, tuple[str, list[int]]] = {}
    for path in weight_files(folder):
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for key, meta in header.items():
            if key != "__metadata__":
                out[key] = (meta["dtype"], list(meta["shape"]))
    return out


def detect_family(config: dict[str, Any]) -> str:
    """The adapter family of a checkpoint from its ``config.json``."""
    model_type = str(config.get("model_type", ""))
    archs = " ".join(config.get("architectures") or [])
    if model_type == "internvl_chat" or "InternVLChatModel" in archs:
        return "vqathinker"
    if model_type == "qwen2_5_vl" or "Qwen2_5_VL" in archs:
        return "qwen2.5-vl"
    if model_type == "qwen3_vl" or "Qwen3VL" in archs:
        return "qwen3-vl"
    raise WeightsNotFound(f"unsupported checkpoint (model_type={model_type!r}, architectures={archs!r}); "
                          "supported: InternVL chat checkpoints with a motion branch (VQAThinker), Qwen2.5-VL "
                          "and Qwen3-VL")


__all__ = ["PICKLE_SUFFIXES", "HUB_PATTERNS", "is_hub_id", "weight_files", "resolve_checkpoint", "read_json",
           "read_config", "iter_tensors", "tensor_index", "detect_family"]
