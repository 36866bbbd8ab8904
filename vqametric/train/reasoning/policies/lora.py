"""LoRA on a reasoning model's language model (needs ``peft``), and the language-model
parameters that full training updates."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import torch

from ....errors import BackendUnavailable
from ...config import option

#: Linear layers of the language model that LoRA adapts by default (Qwen2 / Llama naming).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoRASettings:
    """LoRA on the language model: rank ``r``, scale ``alpha / r``, ``dropout`` (0 keeps the
    training log-probabilities those of the sampling policy), ``target_modules`` (linear-layer
    names inside the language model; the vision tower is never adapted)."""
    r: int = option(16, lo=1)
    alpha: float = option(32.0, positive=True)
    dropout: float = option(0.0, lo=0.0, hi=0.999)
    target_modules: tuple[str, ...] = option(LORA_TARGETS, help="linear layers of the language model")

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoRA r must be a positive integer, got {self.r!r}")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must lie in [0, 1), got {self.dropout!r}")
        self.target_modules = tuple(self.target_modules)
        bad = [m for m in self.target_modules if not isinstance(m, str) or not re.fullmatch(r"[A-Za-z_][\w]*", m)]
        if not self.target_modules or bad:
            raise ValueError(f"LoRA target_modules must be non-empty layer names such as 'q_proj', got "
                             f"{list(self.target_modules)!r}")

    def peft_config(self):
        """peft's ``LoraConfig`` restricted to the language model's ``target_modules``."""
        from peft import LoraConfig  # peft: optional, LoRA only

        names = "|".join(re.escape(m) for m in self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, bias="none",
                          target_modules=rf"(.*\.)?language_model\..*\.({names})")


def require_peft():
    """The ``peft`` module; :class:`BackendUnavailable` naming the install when it is missing."""
    try:
        import peft  # peft: optional, LoRA only
    except ImportError as e:
        raise BackendUnavailable("LoRA training needs peft (pip install peft); without it, drop the LoRA settings "
                                 "to train the whole language model") from e
    return peft


def as_lora(lora: LoRASettings | dict | bool | None) -> LoRASettings | None:
    """``lora`` as settings: None or False (no LoRA), True (the defaults), a dict of the fields."""
    if lora is None or lora is False:
        return None
    if lora is True:
        return LoRASettings()
    if isinstance(lora, LoRASettings):
        return lora
    if isinstance(lora, dict):
        return LoRASettings(**lora)
    raise TypeError(f"lora must be a LoRASettings, a dict of its fields, True or None, got {type(lora).__name__}")


def wrap_lora(model: torch.nn.Module, settings: LoRASettings):
    """``model`` with LoRA layers injected (peft's ``PeftModel``; the layers live in ``model``)."""
    peft = require_peft()
    with warnings.catch_warnings():   # peft asks transformers a deprecated question; nothing for the user to do
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return peft.get_peft_model(model, settings.peft_config())


def language_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of a VLM's language model (decoder, embeddings, LM head), not of its
    vision tower, projector or motion branch."""
    lm = getattr(getattr(model, "model", None), "language_model", None)
    if lm is None:
        raise ValueError(f"{type(model).__name__} has no model.language_model; not a supported VLM class")
    params = list(lm.parameters())
    head = model.get_output_embeddings()
    seen = {id(p) for p in params}
    if head is not None:
        params += [p for p in head.parameters() if id(p) not in seen]
    return params
