"""What every model-family adapter provides, and the helpers they share.

An adapter owns a loaded model and its tokenizer and knows three things about its family:

* :meth:`Adapter.prepare`: decoded frames -> the family's visual tensors for one clip;
* :meth:`Adapter.prompt`: the full chat text for one clip and a question (visual placeholders
  expanded to the exact number of tokens the model will receive);
* :meth:`Adapter.batch_inputs`: several prompts + clips -> the keyword arguments of one
  left-padded ``model.generate`` call.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ...errors import BackendUnavailable, InvalidOption, WeightsNotFound, parse_device
from ...io.frames import Frames
from ...sampling.plan import SamplingConfig, SamplingPlan
from .generation import level_token_ids, stop_token_ids
from .memory import MemoryEstimate


def require_transformers():
    try:
        import transformers  # noqa: F401  # optional: transformers (the lmm extra)
    except ImportError as e:
        raise BackendUnavailable("reasoning models need transformers and accelerate: "
                                 "pip install 'vqametric[lmm]'") from e
    return transformers


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return device


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
        dtype = getattr(torch, aliases.get(name, name), None)
        if not isinstance(dtype, torch.dtype):
            raise InvalidOption(f"unknown dtype {name!r}; use 'bfloat16', 'float16' or 'float32'")
    if dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise InvalidOption(f"dtype must be bfloat16, float16 or float32, got {dtype}")
    return dtype


def check_int8(device: torch.device) -> None:
    if device.type != "cuda":
        raise BackendUnavailable("load_in_8bit needs a CUDA device (bitsandbytes int8 kernels); "
                                 "on CPU load the model in float32 or bfloat16")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise BackendUnavailable("load_in_8bit needs bitsandbytes: pip install bitsandbytes")


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer  # optional: transformers (the lmm extra)
    from transformers.utils import logging as hf_logging  # optional: transformers

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "model of type internvl_chat ..." notices while it reads config.json
    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    except Exception as e:
        raise WeightsNotFound(f"could not load the tokenizer of {folder} without remote code: "
                              f"{type(e).__name__}: {e}") from e
    finally:
        hf_logging.set_verbosity(level)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


@dataclass
class PreparedClip:
    """A clip in the family's input format: ``tensors`` on the model's device plus ``meta``."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


class Adapter:
    """Base class of the family adapters (see module docstring)."""

    family = ""
    #: system message of the family's chat template (None: no system turn)
    system_message: str | None = None
    #: text appended after "<|im_start|>assistant\n" (e.g. "<think>\n" for thinking models)
    assistant_prefix: str = ""
    #: whether the R1 question asks for "only one score" (VisualQuality-R1 wording)
    one_score_prompt: bool = False

    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype

    def __init__(self, folder: str, config: dict[str, Any], *, sampling: SamplingConfig,
                 device: torch.device, dtype: torch.dtype, load_in_8bit: bool = False,
                 attn_implementation: str | None = None):
        self.folder = folder
        self.config = config
        self.sampling = sampling
        self.device = device
        self.dtype = dtype
        self.load_in_8bit = load_in_8bit
        self.attn_implementation = attn_implementation

    # -- set up by subclasses after the tokenizer is loaded ---------------------------------------
    def _init_tokens(self) -> None:
        self.stop_ids = stop_token_ids(self.tokenizer)
        if not self.stop_ids:
            raise WeightsNotFound(f"the tokenizer of {self.folder} has no end-of-turn token (<|im_end|> or eos)")
        self.level_ids = level_token_ids(self.tokenizer)

    def token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if not isinstance(tid, int) or tid < 0 or tid == self.tokenizer.unk_token_id:
            raise WeightsNotFound(f"the tokenizer of {self.folder} has no {token!r} token; "
                                  f"is this a {self.family} checkpoint?")
        return tid

    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False,
                             padding_side="left")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    # -- the family interface ---------------------------------------------------------------------
    def prepare(self, frames: Frames, plan: SamplingPlan, info) -> PreparedClip:  # pragma: no cover - abstract
        raise NotImplementedError

    def prompt(self, clip: PreparedClip, question: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_inputs(self, clips: Sequence[PreparedClip], prompts: Sequence[str]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def memory_estimate(self, sequences: int, prompt_tokens: int,
                        new_tokens: int) -> MemoryEstimate:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "checkpoint": os.path.basename(os.path.normpath(self.folder)),
                "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
                "load_in_8bit": self.load_in_8bit}


def replace_linear_int8(module: torch.nn.Module, device: torch.device, skip: Sequence[str] = ()) -> None:
    """Swap the ``nn.Linear`` layers of ``module`` for bitsandbytes int8 layers on ``device``."""
    import bitsandbytes as bnb  # optional: bitsandbytes (int8 on CUDA)

    for name, child in list(module.named_children()):
        if any(name == s for s in skip):
            continue
        if isinstance(child, torch.nn.Linear):
            q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                    has_fp16_weights=False, threshold=6.0)
            q.weight = bnb.nn.Int8Params(child.weight.data.to("cpu"), requires_grad=False, has_fp16_weights=False)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, q.to(device))
        else:
            replace_linear_int8(child, device, skip)


__all__ = ["Adapter", "PreparedClip", "require_transformers", "resolve_device", "resolve_dtype", "check_int8",
           "load_tokenizer", "replace_linear_int8"]
