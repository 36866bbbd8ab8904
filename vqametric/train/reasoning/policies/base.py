"""What every trainable reasoning model shares, whatever its family: the trainable parameters
(LoRA or the language model), the frozen reference, the forward pass over prompt + completion,
the supervised loss and saving. A family module (:mod:`.qwen_vl`, :mod:`.vqathinker`) supplies
the three layout-specific steps: :meth:`TrainableVLM._placeholder_ids`,
:meth:`TrainableVLM._sequence_inputs` and :meth:`TrainableVLM._save_full`."""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ....backends.lmm.base import Adapter
from ..grpo import token_log_probs
from .lora import LoRASettings, as_lora, language_parameters, wrap_lora
from .prompts import VideoPrompt, perturb_prompt, prepare_prompt

#: Files copied next to saved full weights so that the folder is a loadable checkpoint.
CHECKPOINT_EXTRA_FILES = re.compile(r"^(tokenizer.*|special_tokens_map\.json|vocab\.json|merges\.txt|"
                                    r"added_tokens\.json|.*preprocessor_config\.json|chat_template.*|"
                                    r".*\.tiktoken|.*\.model)$")


@contextlib.contextmanager
def train_mode(module: torch.nn.Module, training: bool) -> Iterator[None]:
    """``module.train(training)`` for the duration of the block, then its previous mode."""
    was = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was)


class TrainableVLM:
    """A reasoning adapter made trainable (LoRA or the language model), with its frozen reference,
    and the forward pass over prompt + completion that both training adapters use."""

    family_name = ""          # the adapter families a subclass trains (error messages)

    @classmethod
    def accepts(cls, adapter: Adapter) -> bool:
        """Whether ``adapter`` is of the family this class trains."""
        return False

    def __init__(self, adapter: Adapter, *, lora: LoRASettings | dict | bool | None = None,
                 reference: torch.nn.Module | None = None, gradient_checkpointing: bool = False):
        if not self.accepts(adapter):
            need = f"a {self.family_name} adapter" if self.family_name else "a family class"
            raise TypeError(f"{type(self).__name__} needs {need}, got {adapter.family!r} "
                            f"({type(adapter).__name__}); training_adapter(adapter, kind) picks the class")
        if getattr(adapter, "load_in_8bit", False):
            raise ValueError("training an int8 model is not supported; load it in bfloat16 or float32")
        self.adapter = adapter
        self.base: torch.nn.Module = adapter.model
        self.lora = as_lora(lora)
        self.peft_model = None
        self.base.requires_grad_(False)
        if self.lora is not None:
            if reference is not None:
                raise ValueError("with LoRA the reference is the model with its adapter disabled; pass no reference")
            self.peft_model = wrap_lora(self.base, self.lora)   # injects the LoRA layers into self.base
            self.ref_model = None
        else:
            self.ref_model = reference if reference is not None else copy.deepcopy(self.base)
            self.ref_model.eval().requires_grad_(False)
            for p in language_parameters(self.base):
                p.requires_grad_(True)
        self._params = [p for p in self.base.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("nothing to train: no LoRA layer matched target_modules in the language model")
        if gradient_checkpointing:
            self.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.base.eval()
        tok = adapter.tokenizer
        self.stop_ids = [int(i) for i in adapter.stop_ids]
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.stop_ids[0])
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self.end_id = int(im_end) if isinstance(im_end, int) and im_end in self.stop_ids else self.stop_ids[0]
        self.suppressed = self._placeholder_ids()

    # -- the family's steps -----------------------------------------------------------------------
    def _placeholder_ids(self) -> list[int]:
        """Tokens that stand for visual inputs: never sampled, never scored."""
        raise NotImplementedError

    def _sequence_inputs(self, model, prompts: Sequence[VideoPrompt], completion_ids: torch.Tensor,
                         completion_mask: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor, int]:
        """``(keyword inputs of model, attention mask (N, P + T), prompt length P)`` for the prompts
        followed by ``(N, T)`` completion ids (on the model's device)."""
        raise NotImplementedError

    def _save_full(self, folder: str, state: dict[str, torch.Tensor]) -> None:
        """Write the merged ``state`` as a checkpoint folder in the family's original layout."""
        raise NotImplementedError

    # -- bookkeeping ------------------------------------------------------------------------------
    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self._params)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self._params)

    @property
    def device(self) -> torch.device:
        return self.adapter.device

    def reset_reference(self) -> None:
        """Make the current model the frozen reference (after a supervised stage). Full training:
        a new deep copy. LoRA: the adapter is merged into the base weights and a fresh adapter is
        started, so :meth:`parameters` changes (build a new optimiser)."""
        if self.peft_model is not None:
            base = self.peft_model.merge_and_unload()
            base.requires_grad_(False)
            self.base = self.adapter.model = base
            self.peft_model = wrap_lora(base, self.lora)
        else:
            self.ref_model = None
            self.ref_model = copy.deepcopy(self.base).eval().requires_grad_(False)
        self._params = [p for p in self.base.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def _reference(self) -> Iterator[torch.nn.Module]:
        if self.peft_model is not None:
            with self.peft_model.disable_adapter(), train_mode(self.base, False):
                yield self.base
        else:
            yield self.ref_model

    # -- inputs -----------------------------------------------------------------------------------
    def prompt(self, video: Any, fps: float | None = None) -> VideoPrompt:
        return prepare_prompt(self.adapter, video, self.question, fps)

    def perturb(self, prompt: VideoPrompt, rng: np.random.Generator) -> VideoPrompt:
        """The ``perturb`` hook of :class:`~vqametric.train.reasoning.grpo.GRPOTrainer`."""
        return perturb_prompt(self.adapter, prompt, rng)

    def _prompt_inputs(self, prompts: Sequence[VideoPrompt]) -> dict[str, Any]:
        return self.adapter.batch_inputs([p.clip for p in prompts], [p.text for p in prompts])

    def _forward(self, model, prompts: Sequence[VideoPrompt], completion_ids: torch.Tensor,
                 completion_mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits that predict the completion tokens: ``(N, T, V)`` for every completion position,
        or ``(N, K, V)`` for the completion positions ``keep`` (1-D, shared by the rows)."""
        c = completion_ids.to(self.device)
        kw, attn, p_len = self._sequence_inputs(model, prompts, c, completion_mask.to(self.device))
        if keep is None:
            out = model(attention_mask=attn, use_cache=False, logits_to_keep=c.shape[1] + 1, **kw)
            return out.logits[:, :-1]
        idx = (keep.to(self.device) + p_len - 1).long()
        return model(attention_mask=attn, use_cache=False, logits_to_keep=idx, **kw).logits

    def _pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sequences -> right-padded ids ``(N, T)`` and float mask, on the model's device."""
        width = max(1, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.float32)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1.0
        return ids.to(self.device), mask.to(self.device)

    def _encode_texts(self, texts: Sequence[str], add_end: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Completion texts -> right-padded ids ``(N, T)`` and mask (the end-of-turn token appended)."""
        tok = self.adapter.tokenizer
        return self._pad([list(tok(t, add_special_tokens=False).input_ids) + ([self.end_id] if add_end else [])
                          for t in texts])

    def supervised_loss(self, prompts: Sequence[VideoPrompt], completions: Sequence[str]) -> torch.Tensor:
        """Token-mean negative log-likelihood of ``completions`` (plus the end-of-turn token) after
        ``prompts``, teacher-forced: a supervised warm-up of the answer format."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        ids, mask = self._encode_texts(completions)
        with train_mode(self.base, True):
            logits = self._forward(self.base, prompts, ids, mask)
        lp = token_log_probs(logits, ids)
        return -(lp * mask).sum() / mask.sum().clamp_min(1.0)

    # -- saving -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, what: str = "auto") -> list[str]:
        """Write the trained weights as safetensors into ``folder``; returns the files written.

        ``what``: ``"adapter"`` (LoRA only: ``adapter_model.safetensors`` + ``adapter_config.json``,
        PEFT's layout), ``"full"`` (a complete checkpoint folder that ``checkpoint=`` loads: the
        LoRA merged into a copy of the weights, the tokenizer and preprocessor files copied from the
        original checkpoint), ``"auto"`` (adapter with LoRA, else full)."""
        folder = os.fspath(folder)
        if what == "auto":
            what = "adapter" if self.peft_model is not None else "full"
        if what not in ("adapter", "full"):
            raise ValueError(f"what must be 'adapter', 'full' or 'auto', got {what!r}")
        os.makedirs(folder, exist_ok=True)
        before = set(os.listdir(folder))
        if what == "adapter":
            if self.peft_model is None:
                raise ValueError("there is no LoRA adapter to save (the whole language model was trained); save 'full'")
            self.peft_model.save_pretrained(folder, safe_serialization=True)
        else:
            self._save_full(folder, self._merged_state())
            src = self.adapter.folder
            for name in sorted(os.listdir(src)):
                if CHECKPOINT_EXTRA_FILES.match(name) and not os.path.exists(os.path.join(folder, name)):
                    shutil.copy2(os.path.join(src, name), os.path.join(folder, name))
        return sorted(set(os.listdir(folder)) - before) or sorted(os.listdir(folder))

    def _merged_state(self) -> dict[str, torch.Tensor]:
        """The native state dict of the trained model, LoRA merged (the training model is left as it is)."""
        if self.peft_model is None:
            return {k: v.detach() for k, v in self.base.state_dict().items()}
        scale = self.lora.alpha / self.lora.r
        state = {}
        lora_layers = {}
        for name, module in self.base.named_modules():
            if hasattr(module, "lora_A") and hasattr(module, "base_layer") and "default" in module.lora_A:
                lora_layers[name] = module
        for name, module in lora_layers.items():
            w = module.base_layer.weight.detach()
            a, b = module.lora_A["default"].weight.detach(), module.lora_B["default"].weight.detach()
            state[name + ".weight"] = (w.float() + scale * (b.float() @ a.float())).to(w.dtype)
            if module.base_layer.bias is not None:
                state[name + ".bias"] = module.base_layer.bias.detach()
        for k, v in self.base.state_dict().items():
            if "lora_" in k:
                continue
            k2 = k.replace(".base_layer.", ".")
            state.setdefault(k2, v.detach())
        return state
