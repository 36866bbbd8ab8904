"""The configs of ``vqametric train grpo`` and ``vqametric train aso`` (see
docs/training-grpo-aso.md, "Config file").

Top-level keys (:class:`TrainConfig`), then tables: ``[model]`` (:class:`ModelSection`),
``[lora]`` (:class:`~vqametric.train.reasoning.policies.LoRASettings`, optional: without it the
whole language model trains), and per mode ``[grpo]`` (:class:`GRPOSection`: every
:class:`~vqametric.train.reasoning.grpo.GRPOConfig` field but ``seed``, plus ``max_new_tokens``)
and ``[rewards]`` (:class:`~vqametric.train.reasoning.rewards.RewardConfig` but ``temporal``, which
``[grpo] temporal`` sets), or ``[aso]`` (:class:`ASOSection`). The schema is these dataclasses
(:mod:`vqametric.train.config`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from ..config import Override, TrainConfigError, apply_overrides, build, internal, option, read_config_file, to_table
from .aso import ASOConfig
from .grpo import GRPOConfig
from .policies.lora import LoRASettings
from .rewards import RewardConfig

MODES = ("grpo", "aso")
#: Tables that belong to the other mode: ``mode -> {table: the command it belongs to}``.
OTHER_TABLES = {"grpo": {"aso": "aso"}, "aso": {"grpo": "grpo", "rewards": "grpo"}}


@dataclass
class ModelSection:
    """``[model]``: the checkpoint to train and how it is loaded (as ``vqametric explain`` does)."""
    checkpoint: str = option(help="checkpoint folder or Hugging Face Hub id (owner/name)", path="local")
    card: str = option("lmm-dimensions", help="model card: sampling config and family (`vqametric models`)")
    runtime: Literal["auto", "vqathinker", "qwen2.5-vl", "qwen3-vl"] | None = None
    device: str | None = option(None, help="cpu, cuda or cuda:N (default: cuda when available)")
    dtype: Literal["bfloat16", "float16", "float32"] | None = None
    frames: int | None = option(None, lo=1, help="frames sampled per video (default: the card's)")
    global_size: int | None = option(None, lo=28, help="frame size in pixels (default: the card's)")
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False


@dataclass
class GRPOSection(GRPOConfig):
    """``[grpo]``: :class:`GRPOConfig` (its ``seed`` is the top-level one) and the completion length."""
    max_new_tokens: int = option(1024, lo=1, help="longest completion")


@dataclass
class ASOSection(ASOConfig):
    """``[aso]``: :class:`ASOConfig` (a named reward, the default levels) and the supervised stage."""
    reward: Literal["abs", "squared"] = "abs"
    sft_steps: int = option(0, lo=0, help="supervised steps on the rationale and answer before ASO")
    sft_learning_rate: float | None = option(None, lo=0.0, zero_is_none=True,
                                             help="learning rate of the supervised stage (0: learning_rate)")


@dataclass(kw_only=True)
class TrainConfig:
    """A validated reasoning-model training config (paths resolved, every default filled in)."""
    mode: Literal["grpo", "aso"] | None = option(None, help="must match the command when given")
    manifest: str = option(help="the training manifest (CSV or JSON Lines)", path="file")
    output: str = option(help="folder for the weights, the resolved config and the log", path="file")
    steps: int = option(lo=1, help="optimiser steps")
    batch_size: int = option(lo=1, help="videos per step")
    learning_rate: float = option(positive=True)
    weight_decay: float = option(0.0, lo=0.0)
    warmup_steps: int = option(0, lo=0, help="linear learning-rate warm-up")
    seed: int = option(0, lo=0)
    save: Literal["auto", "adapter", "full"] = option("auto", help="adapter (LoRA only), full (complete checkpoint) "
                                                      "or auto")
    overwrite: bool = option(False, help="allow a non-empty output folder")
    model: ModelSection = option()
    lora: LoRASettings | None = None
    source: str = internal("<config>")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (what ``--check`` prints and ``train_config.json`` holds)."""
        return to_table(self)

    def lora_settings(self) -> LoRASettings | None:
        return self.lora


@dataclass(kw_only=True)
class GRPOTrainConfig(TrainConfig):
    """``vqametric train grpo``: the top-level keys, ``[model]``, ``[lora]``, ``[grpo]``, ``[rewards]``."""
    batch_size: int = option(2, lo=1, help="videos per step")
    learning_rate: float = option(1e-6, positive=True)
    grpo: GRPOSection = option(factory=GRPOSection, exclude=("seed",))
    rewards: RewardConfig = option(factory=RewardConfig, exclude=("temporal",))

    def grpo_config(self) -> GRPOConfig:
        """The trainer's :class:`GRPOConfig` (the top-level seed)."""
        values = {f.name: getattr(self.grpo, f.name) for f in dataclasses.fields(GRPOConfig)}
        return GRPOConfig(**dict(values, seed=self.seed))

    def reward_config(self) -> RewardConfig:
        """The rewards' :class:`RewardConfig` (the temporal bonus as ``[grpo] temporal`` says)."""
        return dataclasses.replace(self.rewards, temporal=bool(self.grpo.temporal))


@dataclass(kw_only=True)
class ASOTrainConfig(TrainConfig):
    """``vqametric train aso``: the top-level keys, ``[model]``, ``[lora]``, ``[aso]``."""
    batch_size: int = option(8, lo=1, help="videos per step")
    learning_rate: float = option(1e-5, positive=True)
    aso: ASOSection = option(factory=ASOSection, exclude=("levels",))

    def aso_config(self) -> ASOConfig:
        """The trainer's :class:`ASOConfig` (the supervised-stage keys left out)."""
        return ASOConfig(**{f.name: getattr(self.aso, f.name) for f in dataclasses.fields(ASOConfig)})


CONFIGS = {"grpo": GRPOTrainConfig, "aso": ASOTrainConfig}


def parse_config(raw: dict[str, Any], mode: str, source: str = "<config>", base_dir: str | None = None,
                 overrides: Sequence[Override] = ()) -> TrainConfig:
    """Validate a raw config table for ``mode`` (``"grpo"`` or ``"aso"``), after ``overrides``;
    relative paths are resolved against ``base_dir`` (default: the working folder)."""
    if mode not in MODES:
        raise TrainConfigError(f"mode must be one of {MODES}, got {mode!r}")
    for name, right in OTHER_TABLES[mode].items():
        if name in raw:
            raise TrainConfigError(f"{source}: the [{name}] table belongs to `vqametric train {right}`, but this is "
                                   f"`vqametric train {mode}`; remove the table or run the other command")
    cls = CONFIGS[mode]
    raw = apply_overrides(raw, cls, overrides)
    cfg = build(cls, raw, source, base=base_dir if base_dir is not None else os.getcwd())
    if cfg.mode not in (None, mode):
        raise TrainConfigError(f"{source}: mode = {cfg.mode!r} but the command is `vqametric train {mode}`")
    if cfg.save == "adapter" and cfg.lora is None:
        raise TrainConfigError(f"{source}: save = 'adapter' needs a [lora] table; use save = 'full' to save the "
                               "trained language model")
    cfg.mode, cfg.source = mode, source
    return cfg


def load_config(path: str | os.PathLike, mode: str, overrides: Sequence[Override] = ()) -> TrainConfig:
    """Read and validate a config file; relative paths are resolved against its folder."""
    path = os.fspath(path)
    return parse_config(read_config_file(path), mode, source=path, base_dir=os.path.dirname(os.path.abspath(path)),
                        overrides=overrides)


__all__ = ["TrainConfig", "GRPOTrainConfig", "ASOTrainConfig", "ModelSection", "GRPOSection", "ASOSection",
           "parse_config", "load_config", "MODES", "CONFIGS"]

