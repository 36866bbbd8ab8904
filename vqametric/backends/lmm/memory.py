"""Will the model fit? An estimate made before loading, and a clear error when it will not.

``estimate_bytes`` adds

* the weights: every tensor of the checkpoint at the load dtype (linear layers of the language
  model at one byte each with 8-bit loading), read from the safetensors headers;
* the key/value cache: ``2 * layers * kv_heads * head_dim * tokens * sequences`` elements;
* working memory: the largest activation of the prefill (``tokens * hidden * 12`` elements per
  sequence, covering the MLP expansion and attention blocks) plus the vision encoder's activations,
  and a fixed 0.5 GiB for the CUDA context and allocator slack.

It is an estimate (within about 10-20 % for the released 7-8B models in bf16), used to fail early
with numbers instead of an out-of-memory error halfway through loading.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ...errors import VQAMetricError

GIB = 1024 ** 3
_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1}


class ModelTooLarge(VQAMetricError, MemoryError):
    """The reasoning model (with its cache for the requested batch) does not fit in the device's memory."""


@dataclass
class MemoryEstimate:
    weights: int
    kv_cache: int
    activations: int
    overhead: int = GIB // 2

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.overhead

    def describe(self) -> str:
        return (f"{self.total / GIB:.1f} GiB (weights {self.weights / GIB:.1f}, KV cache {self.kv_cache / GIB:.1f}, "
                f"activations {self.activations / GIB:.1f}, overhead {self.overhead / GIB:.1f})")


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def weight_bytes(index: dict[str, tuple[str, list[int]]], dtype: torch.dtype, int8_prefixes: tuple[str, ...] = (),
                 keep_float32: tuple[str, ...] = ()) -> int:
    """Bytes of the checkpoint's tensors once loaded: floating tensors at ``dtype``; 2-D ``.weight``
    tensors under ``int8_prefixes`` at one byte; tensors under ``keep_float32`` at four bytes."""
    size = dtype_bytes(dtype)
    total = 0
    for key, (dt, shape) in index.items():
        n = 1
        for s in shape:
            n *= int(s)
        if dt not in ("BF16", "F16", "F32", "F64"):
            total += n * _DTYPE_BYTES.get(dt, 4)
        elif key.startswith(keep_float32):
            total += n * 4
        elif int8_prefixes and key.startswith(int8_prefixes) and key.endswith(".weight") and len(shape) == 2:
            total += n
        else:
            total += n * size
    return total


def estimate_bytes(index: dict[str, tuple[str, list[int]]], dtype: torch.dtype, *, layers: int, kv_heads: int,
                   head_dim: int, hidden: int, prompt_tokens: int, new_tokens: int, sequences: int,
                   vision_tokens: int = 0, vision_hidden: int = 0, int8_prefixes: tuple[str, ...] = (),
                   keep_float32: tuple[str, ...] = ()) -> MemoryEstimate:
    size = dtype_bytes(dtype)
    tokens = prompt_tokens + new_tokens
    kv = 2 * layers * kv_heads * head_dim * tokens * sequences * size
    act = (prompt_tokens * hidden * 12 * sequences + vision_tokens * max(vision_hidden, 1) * 12) * size
    return MemoryEstimate(weight_bytes(index, dtype, int8_prefixes, keep_float32), kv, act)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable), None when unknown."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:  # pragma: no cover - driver problems
            return None
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits(estimate: MemoryEstimate, device: torch.device, what: str, hint: str = "") -> None:
    """Raise :class:`ModelTooLarge` when ``estimate`` exceeds the free memory of ``device``."""
    free = available_bytes(device)
    if free is None or estimate.total <= free:
        return
    raise ModelTooLarge(
        f"{what} needs about {estimate.describe()} but {device} has {free / GIB:.1f} GiB free. "
        + (hint or "Use a GPU with more memory, dtype=torch.bfloat16, load_in_8bit=True (needs bitsandbytes), "
                   "a smaller batch_size, or fewer frames (sampling={'num_segments': ...})."))


__all__ = ["GIB", "ModelTooLarge", "MemoryEstimate", "weight_bytes", "estimate_bytes", "available_bytes",
           "check_fits", "dtype_bytes"]
