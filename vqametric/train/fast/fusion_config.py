"""The config of the default model's recipe (``vqametric train fusion``, docs/training-fusion.md).

Every field is a key of a TOML config (``--config FILE``), a ``--set KEY=VALUE`` override and a
command-line option of its own (``--eval-ladder 0``), as for ``vqametric train head``. This module
imports no torch, so ``vqametric train fusion --help`` stays light.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..config import Override, internal, load, option, to_table


@dataclass(kw_only=True)
class FusionTrainConfig:
    """The recipe of head architecture 6: data, the compact head to build on, the readouts' fit,
    evaluation. The defaults are those of the shipped 1.2.0 readouts."""
    data: str = option(help="BIQ2021 folder (Images/ and the train CSV)", path="file")
    out: str = option(help="output folder", path="file")
    base: str = option("vqametric-fast-0.5", path="local", help="the compact head to build on: a model name or "
                       ".safetensors file of head architecture 3 (default: the shipped 0.5.0 weights)")
    workers: int = option(2, lo=1, help="feature-extraction worker processes")
    epochs: int = option(20, lo=1, help="epochs of the readouts' fit")
    lr: float = option(1e-3, positive=True, help="peak AdamW learning rate (one-cycle schedule)")
    seed: int = option(0, help="seed of the rows and of the fit")
    limit: int = option(0, lo=0, help="use only this many training images (smoke runs)")
    val_limit: int = option(0, lo=0, help="evaluate on this many validation images")
    reuse_features: bool = option(False, help="reuse OUT/features.npz when present")
    version: str = option("1.2.0", help="version string stored in the weights")
    eval_ladder: int = option(24, lo=0, help="validation images for the ladder taus (0: skip)")
    eval_temporal: int = option(100, lo=0, help="validation images for temporal consistency (0: skip)")
    command: str | None = internal()    # the command metrics.json records (set by the module entry point)

    def recorded(self) -> dict[str, Any]:
        """The settings ``metrics.json`` records (the folders left out)."""
        return {k: v for k, v in to_table(self).items() if k not in ("data", "out")}



def load_fusion_config(path: str | None, overrides: Sequence[Override] = ()) -> FusionTrainConfig:
    """The recipe's config from the file ``path`` (optional) and ``overrides``."""
    return load(FusionTrainConfig, path, overrides)


__all__ = ["FusionTrainConfig", "load_fusion_config"]
