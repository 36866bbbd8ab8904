"""Training adapters for the reasoning models: a GRPO :class:`~vqametric.train.reasoning.grpo.Policy` and an
ASO :class:`~vqametric.train.reasoning.aso.LevelScorer` on top of the inference adapters.

Both wrap an adapter of :mod:`vqametric.backends.lmm` (Qwen2.5-VL / Qwen3-VL, and VQAThinker's
InternVL layout with its motion token) and reuse its input building, so a training prompt is
exactly what inference sends:

* :func:`prepare_prompt` opens a video, plans and decodes its frames with the card's sampling
  config, and builds the family's visual tensors and chat prompt (``Adapter.prepare`` /
  ``Adapter.prompt``, as :class:`~vqametric.backends.lmm.scorer.LMMScorer` does). The decoded
  frames are kept in the :class:`VideoPrompt` for the temporal perturbations;
* :func:`perturb_prompt` re-prepares a clip from
  :func:`~vqametric.train.reasoning.grpo.perturb_frame_indices` of its frame indices (``-1``: a black
  frame), with the original timing, so the perturbed prompt has the same layout and length.

:class:`QwenVLPolicy` (and :class:`VQAThinkerPolicy`) samples with plain multinomial sampling at
the given temperature (no top-k / top-p / repetition penalty, the checkpoint's own generation
defaults kept out), and scores completions with one forward pass over prompt + completion with the
same video inputs. The placeholder tokens of the visual inputs (``<|video_pad|>``,
``<|image_pad|>``, ``<IMG_CONTEXT>``) are excluded from sampling and from the log-probabilities
alike: a completion that contained one could not be scored again with the video.

:class:`QwenVLLevelScorer` (and :class:`VQAThinkerLevelScorer`) gives, teacher-forced, the logits of
the level tokens ``"1"`` ... ``"5"`` at each dimension's score position of the five-dimension
answer (the format :func:`~vqametric.backends.lmm.prompts.dimensions_task` asks for).

Trainable parameters: a LoRA adapter on the language model's linear layers (``lora=``, needs
``peft``) or the whole language model (embeddings, decoder, LM head); the vision tower, the
projector and the motion branch stay frozen. The frozen reference is the model with its LoRA
adapter disabled, or a deep copy of the initial model (which doubles the memory).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ...backends.lmm.base import Adapter, PreparedClip
from ...backends.lmm.prompts import OVERALL_NAME, ULTRAVQA_DIMENSIONS, question_text
from ...backends.lmm.vqathinker import splice_visual_tokens
from ...errors import BackendUnavailable
from ...io.frames import Frames, RGBFrames, YUV420Frames
from ..fast.distortions import BLACK
from .grpo import Rollouts, completion_mask_from_eos, perturb_frame_indices, token_log_probs

#: Linear layers of the language model that LoRA adapts by default (Qwen2 / Llama naming).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Files copied next to saved full weights so that the folder is a loadable checkpoint.
CHECKPOINT_EXTRA_FILES = re.compile(r"^(tokenizer.*|special_tokens_map\.json|vocab\.json|merges\.txt|"
                                    r"added_tokens\.json|.*preprocessor_config\.json|chat_template.*|"
                                    r".*\.tiktoken|.*\.model)$")


# ----------------------------------------------------------------------------------------------
# prompts
@dataclass
class VideoPrompt:
    """One clip and its question, ready for the model.

    ``clip``: the family's visual tensors (``Adapter.prepare``); ``text``: the full chat prompt;
    ``frames``: the decoded frames the clip was made from, one per entry of ``frame_indices``
    (source frame numbers, ``-1`` for a black frame); ``plan`` / ``info``: the sampling plan and
    the clip's metadata (timing). ``question`` is kept to re-prompt a perturbed copy."""
    clip: PreparedClip
    text: str
    question: str
    frames: Frames | None = None
    frame_indices: tuple[int, ...] = ()
    plan: Any = None
    info: Any = None
    source: str = ""


def prepare_prompt(adapter: Adapter, video: Any, question: str, fps: float | None = None) -> VideoPrompt:
    """Open ``video`` (a path, bytes, a tensor ... anything :func:`vqametric.io.open_clip` takes),
    sample and decode it with the adapter's sampling config and build its prompt, the same steps
    as :meth:`LMMScorer.prepare <vqametric.backends.lmm.scorer.LMMScorer.prepare>`."""
    from ...io.clip import open_clip
    from ...sampling import make_plan

    clip = open_clip(video, fps=fps)
    owns = clip is not video
    try:
        info = clip.info
        plan = make_plan(info.num_frames, info.height, info.width, adapter.sampling, fps=info.fps,
                         timestamps=info.timestamps)
        frames = clip.read(plan.frame_indices)
    finally:
        if owns:
            clip.close()
    prepared = adapter.prepare(frames, plan, info)
    return VideoPrompt(prepared, adapter.prompt(prepared, question), question, frames, tuple(plan.frame_indices),
                       plan, info, str(getattr(info, "source", "")))


def _black_level(frames: YUV420Frames) -> tuple[int, int]:
    shift = int(frames.bit_depth) - 8
    return (0 if frames.full_range else 16 << shift), 128 << shift


def select_frames(frames: Frames, positions: Sequence[int]) -> Frames:
    """The frames at ``positions`` (indices into ``frames``), a black frame where a position is
    ``-1``: RGB zeros, or YUV black (luma at the black level, neutral chroma)."""
    pos = torch.as_tensor(list(positions), dtype=torch.long)
    if pos.numel() == 0:
        raise ValueError("no frames selected")
    black = pos == BLACK
    idx = pos.clamp_min(0)
    if isinstance(frames, RGBFrames):
        out = frames.data.index_select(0, idx.to(frames.data.device))
        if black.any():
            out = out.clone()
            out[black.to(out.device)] = 0
        return RGBFrames(out)
    if isinstance(frames, YUV420Frames):
        sel = frames.select(idx)
        if black.any():
            luma, chroma = _black_level(frames)
            b = black.to(sel.y.device)
            y, u, v = sel.y.clone(), sel.u.clone(), sel.v.clone()
            y[b], u[b], v[b] = luma, chroma, chroma
            sel = YUV420Frames(y, u, v, sel.bit_depth, sel.matrix, sel.full_range)
        return sel
    raise TypeError(f"expected RGBFrames or YUV420Frames, got {type(frames).__name__}")


def perturb_prompt(adapter: Adapter, prompt: VideoPrompt, rng: np.random.Generator,
                   kind: str | None = None) -> VideoPrompt:
    """A temporally perturbed copy of ``prompt`` (VQAThinker's temporal reward).

    The new frame indices are ``perturb_frame_indices(prompt.frame_indices, rng, kind)`` (one of
    the six perturbations, drawn per call when ``kind`` is None; ``-1`` is a black frame); the clip
    is prepared again from the kept frames with the original sampling plan, so its timing, token
    layout and prompt length are the original's."""
    if prompt.frames is None or prompt.plan is None or not prompt.frame_indices:
        raise ValueError("the prompt has no decoded frames to perturb; build it with prepare_prompt()")
    base = [int(i) for i in prompt.frame_indices]
    new = [int(i) for i in perturb_frame_indices(np.asarray(base, dtype=np.int64), rng, kind)]
    first: dict[int, int] = {}
    for pos, f in enumerate(base):
        first.setdefault(f, pos)
    frames = select_frames(prompt.frames, [BLACK if f == BLACK else first[f] for f in new])
    prepared = adapter.prepare(frames, prompt.plan, prompt.info)
    return VideoPrompt(prepared, adapter.prompt(prepared, prompt.question), prompt.question, frames, tuple(new),
                       prompt.plan, prompt.info, prompt.source)


# ----------------------------------------------------------------------------------------------
# LoRA
@dataclass
class LoRASettings:
    """LoRA on the language model: rank ``r``, scale ``alpha / r``, ``dropout`` (0 keeps the
    training log-probabilities those of the sampling policy), ``target_modules`` (linear-layer
    names inside the language model; the vision tower is never adapted)."""
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = LORA_TARGETS

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
        from peft import LoraConfig

        names = "|".join(re.escape(m) for m in self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, bias="none",
                          target_modules=rf"(.*\.)?language_model\..*\.({names})")


def require_peft():
    try:
        import peft
    except ImportError as e:
        raise BackendUnavailable("LoRA training needs peft (pip install peft); without it, drop the LoRA settings "
                                 "to train the whole language model") from e
    return peft


def _as_lora(lora: LoRASettings | dict | bool | None) -> LoRASettings | None:
    if lora is None or lora is False:
        return None
    if lora is True:
        return LoRASettings()
    if isinstance(lora, LoRASettings):
        return lora
    if isinstance(lora, dict):
        return LoRASettings(**lora)
    raise TypeError(f"lora must be a LoRASettings, a dict of its fields, True or None, got {type(lora).__name__}")


def _wrap_lora(model: torch.nn.Module, settings: LoRASettings):
    require_peft()
    from peft import get_peft_model

    with warnings.catch_warnings():   # peft asks transformers a deprecated question; nothing for the user to do
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, settings.peft_config())


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


@contextlib.contextmanager
def _mode(module: torch.nn.Module, training: bool) -> Iterator[None]:
    was = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was)


# ----------------------------------------------------------------------------------------------
# the shared machinery
def _family(adapter: Adapter) -> str:
    from ...backends.lmm.qwen_vl import QwenVLAdapter

    if isinstance(adapter, QwenVLAdapter):
        return "qwen"
    if getattr(adapter, "family", "") == "vqathinker":
        return "internvl"
    raise TypeError(f"no training support for adapter {type(adapter).__name__} (family {adapter.family!r})")


class _TrainableVLM:
    """A reasoning adapter made trainable (LoRA or the language model), with its frozen reference,
    and the forward pass over prompt + completion that both training adapters use."""

    family_kind: str | None = None   # "qwen" / "internvl" to restrict a subclass to one layout

    def __init__(self, adapter: Adapter, *, lora: LoRASettings | dict | bool | None = None,
                 reference: torch.nn.Module | None = None, gradient_checkpointing: bool = False):
        kind = _family(adapter)
        if self.family_kind is not None and kind != self.family_kind:
            raise TypeError(f"{type(self).__name__} needs a {self.family_kind} adapter, got {adapter.family!r}")
        if getattr(adapter, "load_in_8bit", False):
            raise ValueError("training an int8 model is not supported; load it in bfloat16 or float32")
        self.adapter, self.kind = adapter, kind
        self.base: torch.nn.Module = adapter.model
        self.lora = _as_lora(lora)
        self.peft_model = None
        self.base.requires_grad_(False)
        if self.lora is not None:
            if reference is not None:
                raise ValueError("with LoRA the reference is the model with its adapter disabled; pass no reference")
            self.peft_model = _wrap_lora(self.base, self.lora)   # injects the LoRA layers into self.base
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

    # -- bookkeeping ------------------------------------------------------------------------------
    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self._params)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self._params)

    @property
    def device(self) -> torch.device:
        return self.adapter.device

    def _placeholder_ids(self) -> list[int]:
        """Tokens that stand for visual inputs: never sampled, never scored."""
        if self.kind == "internvl":
            return [int(self.adapter.context_id)]
        cfg = self.base.config
        ids = {getattr(cfg, "video_token_id", None), getattr(cfg, "image_token_id", None), self.adapter.video_id}
        return sorted(int(i) for i in ids if i is not None)

    def reset_reference(self) -> None:
        """Make the current model the frozen reference (after a supervised stage). Full training:
        a new deep copy. LoRA: the adapter is merged into the base weights and a fresh adapter is
        started, so :meth:`parameters` changes (build a new optimiser)."""
        if self.peft_model is not None:
            base = self.peft_model.merge_and_unload()
            base.requires_grad_(False)
            self.base = self.adapter.model = base
            self.peft_model = _wrap_lora(base, self.lora)
        else:
            self.ref_model = None
            self.ref_model = copy.deepcopy(self.base).eval().requires_grad_(False)
        self._params = [p for p in self.base.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def _reference(self) -> Iterator[torch.nn.Module]:
        if self.peft_model is not None:
            with self.peft_model.disable_adapter(), _mode(self.base, False):
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

    def _internvl_embeds(self, model, prompts: Sequence[VideoPrompt], ids: torch.Tensor, prompt_len: int):
        """Input embeddings of prompt + completion with the frames' and the motion embeddings at the
        ``<IMG_CONTEXT>`` positions of the prompt (as ``VQAThinkerAdapter.batch_inputs``), outside
        inference mode so that the token embeddings keep their gradient."""
        a = self.adapter
        tiles = [p.clip.tensors["tiles"] for p in prompts]
        with torch.no_grad():
            feats = model.model.get_image_features(
                pixel_values=torch.cat(tiles), vision_feature_layer=a.native.vision_feature_layer,
                vision_feature_select_strategy="default", return_dict=True).pooler_output
            motion = a.motion(torch.stack(tiles).permute(0, 2, 1, 3, 4).to(a.dtype))
        embeds = model.get_input_embeddings()(ids)
        return splice_visual_tokens(embeds, ids[:, :prompt_len], a.context_id, feats, motion)

    def _forward(self, model, prompts: Sequence[VideoPrompt], completion_ids: torch.Tensor,
                 completion_mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits that predict the completion tokens: ``(N, T, V)`` for every completion position,
        or ``(N, K, V)`` for the completion positions ``keep`` (1-D, shared by the rows)."""
        c = completion_ids.to(self.device)
        cm = completion_mask.to(self.device)
        if self.kind == "qwen":
            inputs = self._prompt_inputs(prompts)
            ids, mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
            types = inputs.pop("mm_token_type_ids")
            p_len = ids.shape[1]
            full = torch.cat([ids, c], 1)
            attn = torch.cat([mask, cm.to(mask.dtype)], 1)
            text_types = torch.zeros_like(c, dtype=types.dtype)          # the completion is text
            kw = dict(inputs, input_ids=full, mm_token_type_ids=torch.cat([types, text_types], 1))
        else:
            enc = self.adapter.tokenize([p.text for p in prompts])
            ids, mask = enc["input_ids"], enc["attention_mask"]
            p_len = ids.shape[1]
            full = torch.cat([ids, c], 1)
            attn = torch.cat([mask, cm.to(mask.dtype)], 1)
            kw = {"inputs_embeds": self._internvl_embeds(model, prompts, full, p_len),
                  "position_ids": (attn.cumsum(1) - 1).clamp_min(0)}
        if keep is None:
            out = model(attention_mask=attn, use_cache=False, logits_to_keep=c.shape[1] + 1, **kw)
            return out.logits[:, :-1]
        idx = (keep.to(self.device) + p_len - 1).long()
        return model(attention_mask=attn, use_cache=False, logits_to_keep=idx, **kw).logits

    def _encode_texts(self, texts: Sequence[str], add_end: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Completion texts -> right-padded ids ``(N, T)`` and mask (the end-of-turn token appended)."""
        tok = self.adapter.tokenizer
        seqs = [list(tok(t, add_special_tokens=False).input_ids) + ([self.end_id] if add_end else []) for t in texts]
        width = max(1, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.float32)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1.0
        return ids.to(self.device), mask.to(self.device)

    def supervised_loss(self, prompts: Sequence[VideoPrompt], completions: Sequence[str]) -> torch.Tensor:
        """Token-mean negative log-likelihood of ``completions`` (plus the end-of-turn token) after
        ``prompts``, teacher-forced: a supervised warm-up of the answer format."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        ids, mask = self._encode_texts(completions)
        with _mode(self.base, True):
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
            state = self._merged_state()
            if self.kind == "qwen":
                self._save_qwen(folder, state)
            else:
                self._save_vqathinker(folder, state)
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

    def _save_qwen(self, folder: str, state: dict[str, torch.Tensor]) -> None:
        if self.peft_model is None:
            self.base.save_pretrained(folder, safe_serialization=True)
            return
        with torch.device("meta"):                            # an empty shell holding the merged tensors
            model = type(self.base)(copy.deepcopy(self.base.config))
        model.load_state_dict(state, strict=True, assign=True)
        model.generation_config = copy.deepcopy(self.base.generation_config)
        model.save_pretrained(folder, safe_serialization=True)

    def _save_vqathinker(self, folder: str, state: dict[str, torch.Tensor]) -> None:
        """The original InternVL chat layout (what ``VQAThinkerAdapter`` loads): every tensor of the
        source checkpoint, the language model's replaced by the trained ones."""
        import json

        from safetensors.torch import save_file

        from ...backends.lmm.vqathinker import map_key
        from ...backends.lmm.weights import iter_tensors

        out: dict[str, torch.Tensor] = {}
        for key, load in iter_tensors(self.adapter.folder, torch.device("cpu")):
            new = map_key(key)
            language = new is not None and (new.startswith("model.language_model.") or new == "lm_head.weight")
            if language and new in state:
                out[key] = state[new].detach().to("cpu").contiguous()   # the trained dtype
            else:
                out[key] = load().contiguous()
        save_file(out, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(self.adapter.folder, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)


# ----------------------------------------------------------------------------------------------
# GRPO
class VLMPolicy(_TrainableVLM):
    """:class:`~vqametric.train.reasoning.grpo.Policy` over a reasoning adapter (see the module docstring).

    A prompt is a :class:`VideoPrompt` (:meth:`prompt` builds one from a video with the overall
    question the inference scorer asks); :meth:`perturb` is the trainer's ``perturb`` hook.
    ``max_new_tokens`` bounds each completion; ``lora`` (a :class:`LoRASettings`, a dict of its
    fields or True) trains a LoRA adapter instead of the whole language model; ``reference`` a
    frozen model to use instead of a deep copy (not with LoRA)."""

    def __init__(self, adapter: Adapter, *, question: str | None = None, max_new_tokens: int = 1024,
                 lora: LoRASettings | dict | bool | None = None, reference: torch.nn.Module | None = None,
                 gradient_checkpointing: bool = False):
        super().__init__(adapter, lora=lora, reference=reference, gradient_checkpointing=gradient_checkpointing)
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.max_new_tokens = int(max_new_tokens)
        self.question = question if question is not None else question_text(
            "overall", one_score=adapter.one_score_prompt)

    def _generation_config(self, temperature: float):
        from transformers import GenerationConfig

        return GenerationConfig(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0, num_beams=1,
                                repetition_penalty=1.0, max_new_tokens=self.max_new_tokens,
                                eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id,
                                suppress_tokens=list(self.suppressed) or None, use_cache=True)

    @torch.no_grad()
    def generate(self, prompts: Sequence[VideoPrompt], num_generations: int, temperature: float = 1.0) -> Rollouts:
        from transformers import GenerationConfig

        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        repeated = [p for p in prompts for _ in range(num_generations)]
        inputs = self._prompt_inputs(repeated)
        saved = self.base.generation_config
        # none of the checkpoint's generation defaults: generate() fills unset fields from this
        self.base.generation_config = GenerationConfig(eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id)
        try:
            with _mode(self.base, False):
                out = self.base.generate(**inputs, generation_config=self._generation_config(temperature))
        finally:
            self.base.generation_config = saved
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        p_len = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
        completion = sequences[:, p_len:]
        cmask = completion_mask_from_eos(completion, self.stop_ids)
        special = {self.pad_id, *self.stop_ids}
        texts = []
        for row, m in zip(completion.tolist(), cmask.tolist()):
            kept = [t for t, keep in zip(row, m) if keep and t not in special]
            texts.append(self.adapter.tokenizer.decode(kept, skip_special_tokens=True,
                                                       clean_up_tokenization_spaces=False))
        state = {"prompts": repeated, "temperature": float(temperature)}
        return Rollouts(completion, cmask, texts, num_generations, state)

    def _score(self, model, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        s = rollouts.state
        idx = rows.tolist()
        c = rollouts.completion_ids[rows.to(rollouts.completion_ids.device)]
        m = rollouts.completion_mask[rows.to(rollouts.completion_mask.device)]
        logits = self._forward(model, [s["prompts"][i] for i in idx], c, m)
        if self.suppressed:   # sampled with these tokens at -inf: the same distribution here
            logits = logits.index_fill(-1, torch.tensor(self.suppressed, device=logits.device), float("-inf"))
        return token_log_probs(logits, c.to(logits.device), s["temperature"])

    def log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        with _mode(self.base, True):
            return self._score(self.base, rollouts, rows)

    @torch.no_grad()
    def ref_log_probs(self, rollouts: Rollouts, rows: torch.Tensor) -> torch.Tensor:
        with self._reference() as ref:
            return self._score(ref, rollouts, rows)


class QwenVLPolicy(VLMPolicy):
    """:class:`VLMPolicy` for the Qwen2.5-VL / Qwen3-VL adapters (``pixel_values_videos``,
    ``video_grid_thw``, ``mm_token_type_ids``, ``second_per_grid_ts`` as inference builds them)."""
    family_kind = "qwen"


class VQAThinkerPolicy(VLMPolicy):
    """:class:`VLMPolicy` for VQAThinker's InternVL layout (frame tiles + the SlowFast motion token
    put in the input embeddings; position ids from the attention mask)."""
    family_kind = "internvl"


# ----------------------------------------------------------------------------------------------
# ASO
@dataclass
class LevelSample:
    """One video for ASO: its prompt, the ``D`` dimension labels (NaN where not rated), the MOS
    and optionally a rationale (the text of the ``<think>`` section when teacher forcing)."""
    prompt: VideoPrompt
    labels: tuple[float, ...]
    mos: float
    rationale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def context_level(label: float, mos: float) -> int:
    """The level written in the teacher-forced answer: the label rounded half up (the MOS when the
    dimension is not rated), clamped to 1-5."""
    v = mos if label is None or (isinstance(label, float) and math.isnan(label)) else label
    return int(min(5, max(1, math.floor(float(v) + 0.5))))


class VLMLevelScorer(_TrainableVLM):
    """:class:`~vqametric.train.reasoning.aso.LevelScorer` over a reasoning adapter.

    A batch is a list of :class:`LevelSample`. The answer is teacher-forced in the format the
    dimension prompt asks for::

        <think>\\n{rationale}\\n</think>\\n<answer>\\nMotion Quality: 4\\n...\\nClarity Quality: 3\\n
        Overall Quality: 3.45\\n</answer>

    (an empty ``<think>`` section without a rationale; each level is the rounded label, the rounded
    MOS for an unrated dimension; the overall score is the MOS with two decimals).
    :meth:`level_logits` returns ``(N, D, 5)`` logits of the level tokens at the ``D`` score
    positions; :meth:`rationale_nll` the token-mean NLL of the rest of the answer (rationale and
    template, the level tokens left to ASO) plus the end-of-turn token."""

    def __init__(self, adapter: Adapter, *, dimensions: Sequence[str] = ULTRAVQA_DIMENSIONS,
                 overall_name: str = OVERALL_NAME, question: str | None = None,
                 lora: LoRASettings | dict | bool | None = None, reference: torch.nn.Module | None = None,
                 gradient_checkpointing: bool = False):
        if not adapter.level_ids or len(adapter.level_ids) != 5:
            raise ValueError("the tokenizer does not write each level 1-5 as one token; ASO needs level tokens")
        super().__init__(adapter, lora=lora, reference=reference, gradient_checkpointing=gradient_checkpointing)
        self.dimensions = tuple(dimensions)
        if not self.dimensions:
            raise ValueError("ASO needs at least one dimension")
        self.overall_name = overall_name
        self.level_ids = [int(i) for i in adapter.level_ids]
        if question is None:
            from ...backends.lmm.prompts import dimensions_task
            question = dimensions_task(self.dimensions, overall_name)
        self.question = question

    def sample(self, video: Any, labels: Sequence[float], mos: float, rationale: str | None = None,
               fps: float | None = None) -> LevelSample:
        if len(labels) != len(self.dimensions):
            raise ValueError(f"{len(labels)} labels for {len(self.dimensions)} dimensions")
        return LevelSample(self.prompt(video, fps), tuple(float(x) for x in labels), float(mos), rationale)

    def answer_text(self, sample: LevelSample) -> tuple[str, list[int]]:
        """The teacher-forced answer and the character offset of each dimension's level digit."""
        r = (sample.rationale or "").strip()
        text = f"<think>\n{r}\n</think>\n<answer>\n" if r else "<think>\n</think>\n<answer>\n"
        digits = []
        for name, y in zip(self.dimensions, sample.labels):
            text += f"{name}: "
            digits.append(len(text))
            text += f"{context_level(y, sample.mos)}\n"
        text += f"{self.overall_name}: {sample.mos:.2f}\n</answer>"
        prefix = self.adapter.assistant_prefix
        if prefix and text.startswith(prefix):   # already in the prompt
            text = text[len(prefix):]
            digits = [d - len(prefix) for d in digits]
        return text, digits

    def _encode(self, batch: Sequence[LevelSample]):
        tok = self.adapter.tokenizer
        seqs, positions = [], []
        for s in batch:
            text, digits = self.answer_text(s)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
            pos = []
            for d, y in zip(digits, s.labels):
                hit = [i for i, (a, b) in enumerate(offsets) if a == d and b == d + 1]
                want = self.level_ids[context_level(y, s.mos) - 1]
                if not hit or ids[hit[0]] != want:
                    raise ValueError(f"the tokenizer does not give the level digit at character {d} of the answer "
                                     "its own level token; ASO needs '1'..'5' as single tokens after 'Name: '")
                pos.append(hit[0])
            seqs.append(ids + [self.end_id])
            positions.append(pos)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.float32)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1.0
        return ids.to(self.device), mask.to(self.device), torch.tensor(positions, dtype=torch.long, device=self.device)

    def _levels(self, model, batch: Sequence[LevelSample]) -> torch.Tensor:
        ids, mask, pos = self._encode(batch)
        keep = torch.unique(pos.flatten())                    # sorted completion positions
        logits = self._forward(model, [s.prompt for s in batch], ids, mask, keep=keep)   # (N, K, V)
        col = torch.searchsorted(keep, pos)                   # (N, D) column of each score position
        rows = torch.arange(len(batch), device=logits.device).unsqueeze(1)
        picked = logits[rows, col.to(logits.device)]           # (N, D, V)
        return picked[..., torch.tensor(self.level_ids, device=logits.device)]

    def level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        with _mode(self.base, True):
            return self._levels(self.base, batch)

    @torch.no_grad()
    def reference_level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        with self._reference() as ref:
            return self._levels(ref, batch)

    @torch.no_grad()
    def policy_level_logits(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        """:meth:`level_logits` without gradients, in evaluation mode (measurements)."""
        with _mode(self.base, False):
            return self._levels(self.base, batch)

    def rationale_nll(self, batch: Sequence[LevelSample]) -> torch.Tensor:
        ids, attn, pos = self._encode(batch)
        with _mode(self.base, True):
            logits = self._forward(self.base, [s.prompt for s in batch], ids, attn)
        weights = attn.clone()
        weights.scatter_(1, pos, 0.0)                         # the level tokens are ASO's
        lp = token_log_probs(logits, ids)
        return -(lp * weights).sum() / weights.sum().clamp_min(1.0)


class QwenVLLevelScorer(VLMLevelScorer):
    """:class:`VLMLevelScorer` for the Qwen2.5-VL / Qwen3-VL adapters."""
    family_kind = "qwen"


class VQAThinkerLevelScorer(VLMLevelScorer):
    """:class:`VLMLevelScorer` for VQAThinker's InternVL layout."""
    family_kind = "internvl"


def training_adapter(adapter: Adapter, kind: str, **kwargs):
    """The policy (``kind="grpo"``) or level scorer (``"aso"``) class matching ``adapter``'s family."""
    fam = _family(adapter)
    table = {("qwen", "grpo"): QwenVLPolicy, ("internvl", "grpo"): VQAThinkerPolicy,
             ("qwen", "aso"): QwenVLLevelScorer, ("internvl", "aso"): VQAThinkerLevelScorer}
    if (fam, kind) not in table:
        raise ValueError(f"kind must be 'grpo' or 'aso', got {kind!r}")
    return table[(fam, kind)](adapter, **kwargs)


def iter_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[list[int]]:
    """Endless batches of indices into ``n`` items: a new permutation each epoch, every batch full
    (the last one of an epoch is topped up from the next permutation)."""
    if n < 1 or batch_size < 1:
        raise ValueError("need at least one item and a batch size of at least 1")
    pool: list[int] = []
    while True:
        while len(pool) < batch_size:
            pool.extend(int(i) for i in rng.permutation(n))
        yield pool[:batch_size]
        del pool[:batch_size]


__all__ = ["VideoPrompt", "prepare_prompt", "perturb_prompt", "select_frames", "LoRASettings", "LORA_TARGETS",
           "require_peft", "language_parameters", "VLMPolicy", "QwenVLPolicy", "VQAThinkerPolicy", "LevelSample",
           "context_level", "VLMLevelScorer", "QwenVLLevelScorer", "VQAThinkerLevelScorer", "training_adapter",
           "iter_batches"]
