"""``vqametric train grpo|aso|distill --config FILE``: train a reasoning model, or distil one into
the fast head (:mod:`vqametric.train.distill`), from a config file.

The config is TOML (read with the standard library's ``tomllib``) or JSON with the same structure
(see docs/training-grpo-aso.md, "Training reasoning models from the command line")::

    manifest = "train.csv"          # path, mos, optional dimension ratings and rationale
    output = "runs/grpo-1"          # created; must be empty unless overwrite = true
    steps = 200
    batch_size = 2                  # videos per step
    learning_rate = 1e-6
    seed = 0

    [model]
    card = "visualquality-r1-7b"    # sampling config and prompt family (default "lmm-dimensions")
    checkpoint = "TianheWu/VisualQuality-R1-7B"
    dtype = "bfloat16"

    [lora]                          # optional: LoRA on the language model (needs peft)
    r = 16

    [grpo]                          # grpo only: GRPOConfig fields + max_new_tokens
    [rewards]                       # grpo only: RewardConfig fields
    [aso]                           # aso only: ASOConfig fields + sft_steps, sft_learning_rate

Relative paths are resolved against the config file's folder. Every value is checked before the
model is loaded; a problem raises :class:`TrainConfigError` naming the file, the table, the key
and the fix. The run writes ``train_config.json`` (the resolved config), ``log.json`` (per-step
statistics, rewritten after every step) and the weights as safetensors: ``adapter/`` (LoRA,
PEFT's layout) or ``model/`` (a complete checkpoint folder that ``checkpoint=`` loads).

:func:`register` adds the ``train`` command to the main ``vqametric`` parser; :func:`main` runs
it alone (``python -m vqametric.train.cli grpo --config FILE``).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import VQAMetricError

MODES = ("grpo", "aso")
_REQUIRED = object()


class TrainConfigError(VQAMetricError, ValueError):
    """The training config cannot be read or holds a value that cannot be used."""


# ----------------------------------------------------------------------------------------------
# the schema
@dataclass(frozen=True)
class Key:
    """One config key: ``kind`` is int, float, bool, str, choice, str_list or float_map."""
    kind: str
    default: Any = _REQUIRED
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    nullable: bool = False
    zero_is_none: bool = False
    help: str = ""


def _grpo_keys() -> dict[str, Key]:
    from .reasoning.grpo import GRPOConfig
    d = GRPOConfig()
    return {
        "num_generations": Key("int", d.num_generations, lo=2, help="completions per video (G)"),
        "temperature": Key("float", d.temperature, lo=0.0, help="sampling temperature (> 0)"),
        "beta": Key("float", d.beta, lo=0.0, help="KL weight"),
        "clip_epsilon": Key("float", d.clip_epsilon, lo=0.0, hi=1.0),
        "clip_epsilon_high": Key("float", d.clip_epsilon_high, lo=0.0, nullable=True),
        "num_iterations": Key("int", d.num_iterations, lo=1, help="updates per batch of rollouts"),
        "advantage_eps": Key("float", d.advantage_eps, lo=0.0),
        "scale_rewards": Key("bool", d.scale_rewards),
        "aggregation": Key("choice", d.aggregation, choices=("sequence", "token")),
        "micro_batch_size": Key("int", d.micro_batch_size, lo=1, nullable=True, zero_is_none=True,
                                help="rollouts per forward pass (0: all)"),
        "temporal": Key("bool", d.temporal, help="roll out a perturbed copy of each clip for the temporal bonus"),
        "perturbed_generations": Key("int", d.perturbed_generations, lo=1, nullable=True, zero_is_none=True),
        "max_grad_norm": Key("float", d.max_grad_norm, lo=0.0, nullable=True, zero_is_none=True,
                             help="gradient clipping (0: off)"),
        "max_new_tokens": Key("int", 1024, lo=1, help="longest completion"),
    }


def _reward_keys() -> dict[str, Key]:
    from .reasoning.rewards import RewardConfig
    d = RewardConfig()
    return {
        "sigma": Key("float", d.sigma, lo=0.0, help="width of the regression reward (> 0)"),
        "decimal_penalty": Key("float", d.decimal_penalty, lo=0.0, hi=1.0),
        "min_decimals": Key("int", d.min_decimals, lo=0),
        "count_trailing_zeros": Key("bool", d.count_trailing_zeros),
        "missing_value": Key("float", d.missing_value, nullable=True),
        "fidelity_eps": Key("float", d.fidelity_eps, lo=0.0),
        "variance_eps": Key("float", d.variance_eps, lo=0.0),
        "format_pattern": Key("str", d.format_pattern),
        "temporal_bonus": Key("float", d.temporal_bonus, lo=0.0),
        "temporal_thresholds": Key("float_map", dict(d.temporal_thresholds), choices=("ranking", "regression")),
        "temporal_scope": Key("choice", d.temporal_scope, choices=("batch", "video")),
        "weights": Key("float_map", dict(d.weights), choices=("ranking", "regression", "format", "temporal")),
    }


def _aso_keys() -> dict[str, Key]:
    from .reasoning.aso import ASOConfig
    d = ASOConfig()
    return {
        "beta": Key("float", d.beta, lo=0.0, help="KL weight of the closed-form target (> 0)"),
        "epsilon": Key("float", d.epsilon, lo=0.0, hi=1.0, help="reference floor"),
        "reward": Key("choice", d.reward, choices=("abs", "squared")),
        "loss": Key("choice", d.loss, choices=("kl", "ce")),
        "sft_weight": Key("float", d.sft_weight, lo=0.0, help="rationale NLL added to the ASO loss"),
        "max_grad_norm": Key("float", d.max_grad_norm, lo=0.0, nullable=True, zero_is_none=True),
        "sft_steps": Key("int", 0, lo=0, help="supervised steps on the rationale and answer before ASO"),
        "sft_learning_rate": Key("float", None, lo=0.0, nullable=True, zero_is_none=True,
                                 help="learning rate of the supervised stage (0: learning_rate)"),
    }


MODEL_KEYS = {
    "checkpoint": Key("str", help="checkpoint folder or Hugging Face Hub id (owner/name)"),
    "card": Key("str", "lmm-dimensions", help="model card: sampling config and family (`vqametric models`)"),
    "runtime": Key("choice", None, choices=("auto", "vqathinker", "qwen2.5-vl", "qwen3-vl"), nullable=True),
    "device": Key("str", None, nullable=True, help="cpu, cuda or cuda:N (default: cuda when available)"),
    "dtype": Key("choice", None, choices=("bfloat16", "float16", "float32"), nullable=True),
    "frames": Key("int", None, lo=1, nullable=True, help="frames sampled per video (default: the card's)"),
    "global_size": Key("int", None, lo=28, nullable=True, help="frame size in pixels (default: the card's)"),
    "attn_implementation": Key("str", None, nullable=True),
    "gradient_checkpointing": Key("bool", False),
}
LORA_KEYS = {
    "r": Key("int", 16, lo=1),
    "alpha": Key("float", 32.0, lo=0.0),
    "dropout": Key("float", 0.0, lo=0.0, hi=0.999),
    "target_modules": Key("str_list", None, nullable=True, help="linear layers of the language model"),
}


def _top_keys(mode: str) -> dict[str, Key]:
    return {
        "manifest": Key("str", help="the training manifest (CSV or JSON Lines)"),
        "output": Key("str", help="folder for the weights, the resolved config and the log"),
        "steps": Key("int", lo=1, help="optimiser steps"),
        "batch_size": Key("int", 2 if mode == "grpo" else 8, lo=1, help="videos per step"),
        "learning_rate": Key("float", 1e-6 if mode == "grpo" else 1e-5, lo=0.0),
        "weight_decay": Key("float", 0.0, lo=0.0),
        "warmup_steps": Key("int", 0, lo=0, help="linear learning-rate warm-up"),
        "seed": Key("int", 0, lo=0),
        "save": Key("choice", "auto", choices=("auto", "adapter", "full"),
                    help="adapter (LoRA only), full (complete checkpoint) or auto"),
        "overwrite": Key("bool", False, help="allow a non-empty output folder"),
        "mode": Key("choice", mode, choices=MODES, help="must match the command when given"),
    }


TABLES = {"grpo": ("model", "lora", "grpo", "rewards"), "aso": ("model", "lora", "aso")}


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(value: Any, key: Key, where: str) -> Any:
    if value is None:
        if key.nullable:
            return None
        raise TrainConfigError(f"{where}: null is not allowed; give a value or remove the key for its default")
    k = key.kind
    if k == "bool":
        if not isinstance(value, bool):
            raise TrainConfigError(f"{where}: expected true or false, got {value!r} ({_type_name(value)})")
        return value
    if k in ("int", "float"):
        ok = isinstance(value, int) if k == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            want = "an integer" if k == "int" else "a number"
            raise TrainConfigError(f"{where}: expected {want}, got {value!r} ({_type_name(value)})"
                                   + ("; write it without quotes" if isinstance(value, str) else ""))
        x = int(value) if k == "int" else float(value)
        if k == "float" and not math.isfinite(x):
            raise TrainConfigError(f"{where}: expected a finite number, got {value!r}")
        if key.zero_is_none and x == 0:
            return None
        if key.lo is not None and x < key.lo:
            raise TrainConfigError(f"{where}: {x:g} is below the minimum {key.lo:g}")
        if key.hi is not None and x > key.hi:
            raise TrainConfigError(f"{where}: {x:g} is above the maximum {key.hi:g}")
        return x
    if k in ("str", "choice"):
        if not isinstance(value, str) or not value.strip():
            raise TrainConfigError(f"{where}: expected a non-empty string, got {value!r} ({_type_name(value)})")
        if k == "choice" and value not in key.choices:
            raise TrainConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, key.choices))}"
                                   + _suggest(value, key.choices))
        return value
    if k == "str_list":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise TrainConfigError(f"{where}: expected a non-empty list of strings, got {value!r}")
        return list(value)
    if k == "float_map":
        if not isinstance(value, dict):
            raise TrainConfigError(f"{where}: expected a table of names to numbers, got {value!r}")
        out = {}
        for name, v in value.items():
            if key.choices and name not in key.choices:
                raise TrainConfigError(f"{where}: unknown name {name!r}{_suggest(name, key.choices)}; known: "
                                       f"{', '.join(key.choices)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise TrainConfigError(f"{where}.{name}: expected a finite number, got {v!r}")
            out[name] = float(v)
        return out
    raise AssertionError(k)  # pragma: no cover


def _section(raw: Any, schema: dict[str, Key], where: str, tables: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{where}: expected a table (key = value pairs), got {_type_name(raw)}")
    for name in raw:
        if name not in schema:
            known = sorted(schema) + [f"[{t}]" for t in tables]
            raise TrainConfigError(f"{where}: unknown key {name!r}{_suggest(name, list(schema) + list(tables))}; "
                                   f"known: {', '.join(known)}")
    out = {}
    for name, key in schema.items():
        if name in raw:
            out[name] = _check(raw[name], key, f"{where} {name}")
        elif key.default is _REQUIRED:
            hint = f" ({key.help})" if key.help else ""
            raise TrainConfigError(f"{where}: missing required key {name!r}{hint}")
        else:
            out[name] = copy_default(key.default)
    return out


def copy_default(v: Any) -> Any:
    return dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v


# ----------------------------------------------------------------------------------------------
# the resolved config
@dataclass
class TrainConfig:
    """A validated training config (paths resolved). ``grpo``, ``rewards`` and ``aso`` hold the
    values of their tables with every default filled in."""
    mode: str
    source: str
    manifest: str
    output: str
    steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    seed: int
    save: str
    overwrite: bool
    model: dict[str, Any]
    lora: dict[str, Any] | None = None
    grpo: dict[str, Any] = field(default_factory=dict)
    rewards: dict[str, Any] = field(default_factory=dict)
    aso: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    def grpo_config(self):
        from .reasoning.grpo import GRPOConfig
        g = {k: v for k, v in self.grpo.items() if k != "max_new_tokens"}
        return GRPOConfig(seed=self.seed, **g)

    def reward_config(self):
        from .reasoning.rewards import RewardConfig
        return RewardConfig(temporal=bool(self.grpo.get("temporal", True)), **self.rewards)

    def aso_config(self):
        from .reasoning.aso import ASOConfig
        a = {k: v for k, v in self.aso.items() if k not in ("sft_steps", "sft_learning_rate")}
        return ASOConfig(**a)

    def lora_settings(self):
        if self.lora is None:
            return None
        from .reasoning.policies import LORA_TARGETS, LoRASettings
        d = dict(self.lora)
        d["target_modules"] = tuple(d.get("target_modules") or LORA_TARGETS)
        return LoRASettings(**d)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw table of a ``.toml`` or ``.json`` config file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TrainConfigError(f"config file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".toml":
            import tomllib
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        elif ext == ".json":
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        else:
            raise TrainConfigError(f"{path}: unknown config extension {ext!r}; use .toml or .json")
    except TrainConfigError:
        raise
    except UnicodeDecodeError as e:
        raise TrainConfigError(f"{path}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise TrainConfigError(f"{path}: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except Exception as e:  # tomllib.TOMLDecodeError
        raise TrainConfigError(f"{path}: invalid TOML ({e})") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: the config must be a table (a JSON object), got {_type_name(raw)}")
    return raw


def _resolve(base: str, p: str) -> str:
    p = os.path.expanduser(p)
    return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))


def parse_config(raw: dict[str, Any], mode: str, source: str = "<config>", base_dir: str | None = None) -> TrainConfig:
    """Validate a raw config table for ``mode`` (``"grpo"`` or ``"aso"``)."""
    if mode not in MODES:
        raise TrainConfigError(f"mode must be one of {MODES}, got {mode!r}")
    base = base_dir if base_dir is not None else os.getcwd()
    tables = TABLES[mode]
    other = {"grpo": ("aso",), "aso": ("grpo", "rewards")}[mode]
    for name in other:
        if name in raw:
            right = "aso" if name == "aso" else "grpo"
            raise TrainConfigError(f"{source}: the [{name}] table belongs to `vqametric train {right}`, but this is "
                                   f"`vqametric train {mode}`; remove the table or run the other command")
    top = {k: v for k, v in raw.items() if k not in tables}
    values = _section(top, _top_keys(mode), source, tables)
    if values["mode"] != mode:
        raise TrainConfigError(f"{source}: mode = {values['mode']!r} but the command is `vqametric train {mode}`")
    if "model" not in raw:
        raise TrainConfigError(f"{source}: missing table [model] with at least checkpoint = \"PATH or owner/name\"")
    model = _section(raw["model"], MODEL_KEYS, f"{source}: [model]")
    ck = model["checkpoint"]
    if not os.path.isabs(ck) and os.path.exists(os.path.join(base, ck)):
        model["checkpoint"] = _resolve(base, ck)
    lora = _section(raw["lora"], LORA_KEYS, f"{source}: [lora]") if "lora" in raw else None
    grpo = _section(raw.get("grpo", {}), _grpo_keys(), f"{source}: [grpo]") if mode == "grpo" else {}
    rewards = _section(raw.get("rewards", {}), _reward_keys(), f"{source}: [rewards]") if mode == "grpo" else {}
    aso = _section(raw.get("aso", {}), _aso_keys(), f"{source}: [aso]") if mode == "aso" else {}
    if mode == "grpo":
        if not grpo["temperature"] > 0:
            raise TrainConfigError(f"{source}: [grpo] temperature must be positive, got {grpo['temperature']:g}")
        if not rewards["sigma"] > 0:
            raise TrainConfigError(f"{source}: [rewards] sigma must be positive, got {rewards['sigma']:g}")
    if mode == "aso" and not aso["beta"] > 0:
        raise TrainConfigError(f"{source}: [aso] beta must be positive, got {aso['beta']:g}")
    if values["save"] == "adapter" and lora is None:
        raise TrainConfigError(f"{source}: save = 'adapter' needs a [lora] table; use save = 'full' to save the "
                               "trained language model")
    if not values["learning_rate"] > 0:
        raise TrainConfigError(f"{source}: learning_rate must be positive, got {values['learning_rate']:g}")
    if lora is not None:
        try:
            from .reasoning.policies import LORA_TARGETS, LoRASettings
            LoRASettings(**{**lora, "target_modules": tuple(lora["target_modules"] or LORA_TARGETS)})
        except ValueError as e:
            raise TrainConfigError(f"{source}: [lora] {e}") from None
    values.pop("mode")
    return TrainConfig(mode=mode, source=source, manifest=_resolve(base, values.pop("manifest")),
                       output=_resolve(base, values.pop("output")), model=model, lora=lora, grpo=grpo,
                       rewards=rewards, aso=aso, **values)


def load_config(path: str | os.PathLike, mode: str) -> TrainConfig:
    """Read and validate a config file; relative paths are resolved against its folder."""
    path = os.fspath(path)
    raw = read_config_file(path)
    return parse_config(raw, mode, source=path, base_dir=os.path.dirname(os.path.abspath(path)))


# ----------------------------------------------------------------------------------------------
# running
def check_output_folder(output: str, overwrite: bool, source: str, note: str = "") -> None:
    """The output must be a folder that is new or empty, unless ``overwrite``."""
    if os.path.isfile(output):
        raise TrainConfigError(f"{source}: output {output!r} is a file; name a folder")
    if os.path.isdir(output) and os.listdir(output) and not overwrite:
        raise TrainConfigError(f"{source}: output folder {output!r} is not empty; choose a new folder or set "
                               f"overwrite = true{note}")


def check_output(cfg: TrainConfig) -> None:
    check_output_folder(cfg.output, cfg.overwrite, cfg.source)


def load_records(cfg: TrainConfig):
    from .manifest import load_manifest
    records = load_manifest(cfg.manifest)
    if cfg.mode == "aso":
        rated = [r for r in records if r.dimensions]
        if not rated:
            raise TrainConfigError(f"{cfg.manifest}: no row has a dimension rating; ASO needs the columns "
                                   "motion_quality, motion_amplitude, aesthetic_quality, content_quality, "
                                   "clarity_quality (at least one per row that trains)")
        records = rated
    return records


def load_adapter(cfg: TrainConfig, prompt: str):
    """The inference adapter of the configured checkpoint (the same loading as ``vqametric explain``)."""
    from ..backends import build_scorer
    from ..registry import get_card
    from ..sampling.plan import SamplingConfig

    m = cfg.model
    card = get_card(m["card"])
    if card.backend != "lmm":
        raise TrainConfigError(f"{cfg.source}: [model] card {m['card']!r} is a {card.backend} model; training here "
                               "needs a reasoning-model card (`vqametric models`)")
    over = {k: v for k, v in (("num_segments", m["frames"]), ("global_size", m["global_size"])) if v is not None}
    if over:
        card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(), **over}))
    opts: dict[str, Any] = {"checkpoint": m["checkpoint"], "prompt": prompt}
    if m["dtype"]:
        opts["dtype"] = m["dtype"]
    if m["attn_implementation"]:
        opts["attn_implementation"] = m["attn_implementation"]
    scorer = build_scorer(card, device=m["device"], runtime=m["runtime"], **opts)
    return scorer.adapter


def _scheduler(optimizer, warmup: int):
    import torch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


class _Log:
    def __init__(self, cfg: TrainConfig, echo: Callable[[str], None] | None):
        self.cfg, self.echo = cfg, echo
        self.path = os.path.join(cfg.output, "log.json")
        self.steps: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    def add(self, entry: dict[str, Any], line: str) -> None:
        self.steps.append(_finite(entry))
        self.write()
        if self.echo:
            self.echo(line)

    def write(self, summary: dict[str, Any] | None = None) -> None:
        doc = {"mode": self.cfg.mode, "info": self.info, "steps": self.steps}
        if summary is not None:
            doc["summary"] = summary
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.path)


def _window_means(steps: list[dict[str, Any]], key: str, n: int = 10) -> dict[str, float] | None:
    vals = [s[key] for s in steps if s.get(key) is not None]
    if not vals:
        return None
    w = max(1, min(n, len(vals) // 2 or 1))
    return {"first": float(sum(vals[:w]) / w), "last": float(sum(vals[-w:]) / w), "window": w}


def _start(cfg: TrainConfig, prompt: str):
    """What every run begins with: check the output, read the manifest, seed, load the model.
    Returns ``(records, inference adapter)``."""
    import torch

    check_output(cfg)
    records = load_records(cfg)
    os.makedirs(cfg.output, exist_ok=True)
    torch.manual_seed(cfg.seed)
    return records, load_adapter(cfg, prompt)


def run_grpo(cfg: TrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """GRPO on the manifest's videos; returns the summary written to ``log.json``."""
    import numpy as np
    import torch

    from .reasoning.grpo import GRPOTrainer
    from .reasoning.policies import iter_batches, training_adapter
    from .reasoning.rewards import VQAThinkerRewards

    records, adapter = _start(cfg, "overall")
    policy = training_adapter(adapter, "grpo", max_new_tokens=cfg.grpo["max_new_tokens"], lora=cfg.lora_settings(),
                              gradient_checkpointing=cfg.model["gradient_checkpointing"])
    _write_config(cfg, adapter)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    trainer = GRPOTrainer(policy, VQAThinkerRewards(cfg.reward_config()), opt, cfg.grpo_config(),
                          perturb=policy.perturb, scheduler=_scheduler(opt, cfg.warmup_steps))
    log = _Log(cfg, echo)
    log.info = {"videos": len(records), "trainable_parameters": policy.num_trainable(), "family": adapter.family,
                "lora": cfg.lora is not None}
    batches = iter_batches(len(records), cfg.batch_size, np.random.default_rng(cfg.seed))
    t_start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        idx = next(batches)
        lr = opt.param_groups[0]["lr"]
        samples = [{"prompt": policy.prompt(records[i].path), "mos": records[i].mos} for i in idx]
        res = trainer.step(samples)
        entry = dict(res.stats, step=step, lr=lr, seconds=time.perf_counter() - t0,
                     example=res.rollouts.texts[0][:300])
        log.add(entry, f"step {step}/{cfg.steps}  reward {entry['reward/total']:.3f}  "
                       f"format {entry.get('reward/format', float('nan')):.2f}  kl {entry.get('kl', 0.0):.4f}  "
                       f"loss {entry['loss']:.4f}  {entry['seconds']:.1f}s")
    files = _save(cfg, policy)
    summary = {"steps": cfg.steps, "seconds": time.perf_counter() - t_start, "saved": files,
               "reward/total": _window_means(log.steps, "reward/total"),
               "reward/regression": _window_means(log.steps, "reward/regression"),
               "reward/format": _window_means(log.steps, "reward/format"),
               "kl_max": max((s.get("kl") or 0.0) for s in log.steps)}
    log.write(summary)
    return summary


def run_aso(cfg: TrainConfig, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Optional supervised stage, then ASO on the manifest's dimension ratings; returns the summary."""
    import numpy as np
    import torch

    from .reasoning.aso import ASOTrainer
    from .manifest import DIMENSION_TITLES, DIMENSIONS, dimension_labels
    from .reasoning.policies import LevelSample, iter_batches, training_adapter

    records, adapter = _start(cfg, "dimensions")
    scorer = training_adapter(adapter, "aso", dimensions=[DIMENSION_TITLES[d] for d in DIMENSIONS],
                              lora=cfg.lora_settings(), gradient_checkpointing=cfg.model["gradient_checkpointing"])
    _write_config(cfg, adapter)
    log = _Log(cfg, echo)
    log.info = {"videos": len(records), "trainable_parameters": scorer.num_trainable(), "family": adapter.family,
                "lora": cfg.lora is not None}
    labels_all = dimension_labels(records)
    rng = np.random.default_rng(cfg.seed)
    batches = iter_batches(len(records), cfg.batch_size, rng)
    aso_cfg = cfg.aso_config()

    def batch():
        idx = next(batches)
        samples = [LevelSample(scorer.prompt(records[i].path), tuple(labels_all[i].tolist()), records[i].mos,
                               records[i].rationale) for i in idx]
        return samples, labels_all[idx]

    t_start = time.perf_counter()
    sft_steps = cfg.aso["sft_steps"]
    if sft_steps:
        opt = torch.optim.AdamW(scorer.parameters(), lr=cfg.aso["sft_learning_rate"] or cfg.learning_rate,
                                weight_decay=cfg.weight_decay)
        sched = _scheduler(opt, cfg.warmup_steps)
        sft = ASOTrainer(scorer, opt, aso_cfg)
        for step in range(1, sft_steps + 1):
            t0 = time.perf_counter()
            samples, _ = batch()
            lr = opt.param_groups[0]["lr"]
            st = sft.sft_step(samples)
            sched.step()
            entry = dict(st, stage="sft", step=step, lr=lr, seconds=time.perf_counter() - t0)
            log.add(entry, f"sft {step}/{sft_steps}  nll {st['sft/nll']:.4f}  {entry['seconds']:.1f}s")
        scorer.reset_reference()          # ASO regularises toward the model after the supervised stage
    opt = torch.optim.AdamW(scorer.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = _scheduler(opt, cfg.warmup_steps)
    trainer = ASOTrainer(scorer, opt, aso_cfg)
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        samples, labels = batch()
        lr = opt.param_groups[0]["lr"]
        st = trainer.step(samples, labels)
        sched.step()
        entry = dict(st, stage="aso", step=step, lr=lr, seconds=time.perf_counter() - t0)
        log.add(entry, f"aso {step}/{cfg.steps}  loss {st['aso/loss']:.4f}  mae {st['aso/mae']:.3f}  "
                       f"kl {st['aso/kl_policy_ref']:.4f}  {entry['seconds']:.1f}s")
    files = _save(cfg, scorer)
    aso_steps = [s for s in log.steps if s.get("stage") == "aso"]
    summary = {"steps": cfg.steps, "sft_steps": sft_steps, "seconds": time.perf_counter() - t_start, "saved": files,
               "aso/mae": _window_means(aso_steps, "aso/mae"), "aso/loss": _window_means(aso_steps, "aso/loss"),
               "aso/kl_policy_ref_last": aso_steps[-1]["aso/kl_policy_ref"],
               "aso/kl_target_ref_last": aso_steps[-1]["aso/kl_target_ref"]}
    log.write(summary)
    return summary


def _write_config(cfg: TrainConfig, adapter) -> None:
    d = cfg.to_dict()
    d["resolved"] = {"family": adapter.family, "sampling": adapter.sampling.to_dict()}
    with open(os.path.join(cfg.output, "train_config.json"), "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2)


def _save(cfg: TrainConfig, trainable) -> list[str]:
    what = cfg.save if cfg.save != "auto" else ("adapter" if cfg.lora is not None else "full")
    sub = "adapter" if what == "adapter" else "model"
    folder = os.path.join(cfg.output, sub)
    trainable.save(folder, what)
    return sorted(os.path.join(sub, f) for f in os.listdir(folder))


RUNNERS = {"grpo": run_grpo, "aso": run_aso}


# ----------------------------------------------------------------------------------------------
# distillation: `vqametric train distill --config FILE` (see vqametric.train.distill)
DISTILL_TOP = {
    "videos": Key("str", help="a .txt list of videos (one path per line) or a training manifest (CSV/JSONL with mos)"),
    "output": Key("str", help="folder for the head files, the teacher's cached scores, metrics and log"),
    "overwrite": Key("bool", False, help="allow a non-empty output folder (cached teacher scores are reused)"),
    "install": Key("bool", True, help="install the head in the user models folder so it is usable by name"),
    "mode": Key("choice", "distill", choices=("distill",)),
}
DISTILL_TEACHER = {
    "card": Key("str", "vqathinker-8b", help="reasoning model card (`vqametric models`)"),
    "checkpoint": Key("str", None, nullable=True, help="checkpoint folder or Hugging Face Hub id"),
    "device": Key("str", None, nullable=True),
    "dtype": Key("choice", None, choices=("bfloat16", "float16", "float32"), nullable=True),
    "scoring": Key("choice", "expected", choices=("expected", "parsed")),
    "num_samples": Key("int", 1, lo=1),
    "max_new_tokens": Key("int", 1024, lo=1),
    "batch_size": Key("int", 4, lo=1),
    "frames": Key("int", None, lo=1, nullable=True, help="frames sampled per video (default: the card's)"),
    "global_size": Key("int", None, lo=28, nullable=True, help="frame size in pixels (default: the card's)"),
}
DISTILL_STUDENT = {
    "name": Key("str", "distilled-head", help="model name the head is registered under"),
    "init": Key("str", None, nullable=True, help="head to fine-tune: a .safetensors head or a fast model name such "
                "as vqametric-fast (default: a new default-architecture head)"),
    "steps": Key("int", 300, lo=1),
    "batch_size": Key("int", 8, lo=2),
    "learning_rate": Key("float", 1e-3, lo=0.0),
    "weight_decay": Key("float", 1e-4, lo=0.0),
    "val_fraction": Key("float", 0.2, lo=0.0, hi=0.9),
    "seed": Key("int", 0, lo=0),
    "version": Key("str", "distilled"),
}


def load_distill_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a distillation config: top-level keys, ``[teacher]`` and ``[student]``."""
    path = os.fspath(path)
    raw = read_config_file(path)
    base = os.path.dirname(os.path.abspath(path))
    top = _section({k: v for k, v in raw.items() if k not in ("teacher", "student")}, DISTILL_TOP, path,
                   ("teacher", "student"))
    teacher = _section(raw.get("teacher", {}), DISTILL_TEACHER, f"{path}: [teacher]")
    student = _section(raw.get("student", {}), DISTILL_STUDENT, f"{path}: [student]")
    top["videos"], top["output"] = _resolve(base, top["videos"]), _resolve(base, top["output"])
    if teacher["checkpoint"] and os.path.exists(_resolve(base, teacher["checkpoint"])):
        teacher["checkpoint"] = _resolve(base, teacher["checkpoint"])
    if student["init"]:
        student["init"] = _resolve(base, student["init"])
    if not student["learning_rate"] > 0:
        raise TrainConfigError(f"{path}: [student] learning_rate must be positive")
    return {"source": path, **top, "teacher": teacher, "student": student}


def run_distill(cfg: dict[str, Any], echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    from .distill import DistillSettings, LMMTeacher, distill, read_video_list

    rows = read_video_list(cfg["videos"])
    from ..registry import get_card
    from ..sampling.plan import SamplingConfig

    t = dict(cfg["teacher"])
    card, device = get_card(t.pop("card")), t.pop("device")
    if card.backend != "lmm":
        raise TrainConfigError(f"{cfg['source']}: [teacher] card {card.name!r} is a {card.backend} model; the teacher "
                               "must be a reasoning model (`vqametric models`)")
    over = {k: v for k, v in (("num_segments", t.pop("frames")), ("global_size", t.pop("global_size"))) if v}
    if over:
        card = get_card(card, sampling=SamplingConfig.from_dict({**card.sampling.to_dict(), **over}))
    teacher = LMMTeacher(card, device=device, **{k: v for k, v in t.items() if v is not None})
    metrics = distill(rows, teacher, cfg["output"], DistillSettings(**cfg["student"]), echo, install=cfg["install"])
    return {k: v for k, v in metrics.items() if k not in ("settings",)}


def _run_distill(args: argparse.Namespace) -> int:
    try:
        cfg = load_distill_config(args.config)
        if args.output is not None:
            cfg["output"] = os.path.abspath(args.output)
        if args.steps is not None:
            cfg["student"]["steps"] = args.steps
        if args.device is not None:
            cfg["teacher"]["device"] = args.device
        check_output_folder(cfg["output"], cfg["overwrite"], cfg["source"],
                            " (cached teacher scores are then reused)")
        from .distill import read_video_list
        rows = read_video_list(cfg["videos"])
    except (VQAMetricError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(json.dumps(dict(cfg, videos_listed=len(rows)), indent=2))
        return 0
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        summary = run_distill(cfg, echo)
    except (VQAMetricError, OSError, RuntimeError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for part in ("student_vs_teacher", "student_vs_mos"):
        if part in summary:
            summary[part] = {k: v for k, v in summary[part].items() if k != "predictions"}
    print(json.dumps({"output": cfg["output"], **summary}, indent=2))
    return 0


# ----------------------------------------------------------------------------------------------
# the command line
def _run(args: argparse.Namespace) -> int:
    mode = args.train_mode
    try:
        cfg = load_config(args.config, mode)
        if args.steps is not None:
            if args.steps < 1:
                raise TrainConfigError("--steps must be at least 1")
            cfg.steps = args.steps
        if args.output is not None:
            cfg.output = os.path.abspath(args.output)
        if args.device is not None:
            cfg.model["device"] = args.device
        check_output(cfg)
        records = load_records(cfg)          # the manifest's errors name the file, line and column
    except VQAMetricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(json.dumps(dict(cfg.to_dict(), videos=len(records)), indent=2))
        return 0
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        summary = RUNNERS[mode](cfg, echo)
    except TrainConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (VQAMetricError, OSError, RuntimeError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"output": cfg.output, **summary}, indent=2))
    return 0


def add_modes(parser: argparse.ArgumentParser) -> None:
    """Add the ``grpo``, ``aso`` and ``distill`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="train_mode", required=True, metavar="{grpo,aso,distill}")
    helps = {"grpo": "GRPO with VQAThinker's rewards (ranking, regression, format, temporal)",
             "aso": "Analytic Score Optimization of the five dimension ratings (optional supervised stage first)"}
    for mode in MODES:
        p = sub.add_parser(mode, help=helps[mode], description=helps[mode] + ". The config format is described in "
                           "docs/training-grpo-aso.md.")
        p.add_argument("--config", required=True, help="TOML or JSON training config")
        p.add_argument("--steps", type=int, default=None, help="override the config's steps")
        p.add_argument("--output", default=None, help="override the config's output folder")
        p.add_argument("--device", default=None, help="override [model] device (cpu, cuda, cuda:N)")
        p.add_argument("--check", action="store_true",
                       help="validate the config and the manifest, print the resolved config, load no model")
        p.add_argument("--quiet", "-q", action="store_true", help="no per-step lines on stderr")
        p.set_defaults(func=_run, train_mode=mode)
    d = sub.add_parser("distill", help="score videos with a reasoning model and train the fast head on the scores",
                       description="Distil a reasoning model into the fast head. The config format is described "
                       "in docs/training-grpo-aso.md.")
    d.add_argument("--config", required=True, help="TOML or JSON distillation config")
    d.add_argument("--steps", type=int, default=None, help="override [student] steps")
    d.add_argument("--output", default=None, help="override the config's output folder")
    d.add_argument("--device", default=None, help="override [teacher] device")
    d.add_argument("--check", action="store_true", help="validate the config and the video list, load no model")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    d.set_defaults(func=_run_distill, train_mode="distill")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``train grpo|aso`` to the ``vqametric`` command's subparsers; returns the ``train`` parser."""
    t = subparsers.add_parser("train", help="train a reasoning model (GRPO, ASO) or distil one into the fast head",
                              description="Train a reasoning model from a TOML/JSON config file.")
    add_modes(t)
    return t


def main(argv: Sequence[str] | None = None) -> int:
    """``vqametric train`` on its own: ``main(["grpo", "--config", "run.toml"])``."""
    parser = argparse.ArgumentParser(prog="vqametric train", description="Train a reasoning model from a config file.")
    add_modes(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


__all__ = ["TrainConfig", "TrainConfigError", "Key", "load_config", "parse_config", "read_config_file", "run_grpo",
           "run_aso", "load_distill_config", "run_distill", "register", "add_modes", "main", "MODES"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
