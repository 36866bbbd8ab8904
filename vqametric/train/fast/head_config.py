"""The config of the compact head's recipe (``vqametric train head``, docs/training-head.md).

Every field is a key of a TOML config (``--config FILE``), a ``--set KEY=VALUE`` override and a
command-line option of its own (``--spatial-stride 4``; a boolean that defaults to true is turned
off with ``--no-...``), so the recipe's commands in the docs work as written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...backends.head import ARCH, SUPPORTED_ARCHS, HeadConfig
from ..config import internal, option, to_table
from .data import SPATIAL_WEIGHTS


@dataclass(kw_only=True)
class HeadTrainConfig:
    """The compact head's recipe: data, schedule, architecture, sampling of the synthetic ladders,
    evaluation. ``width``, ``spatial_stride`` and ``arch`` left at None take :class:`HeadConfig`'s
    defaults, or the ``init`` head's; training fills them with the architecture used."""
    data: str = option(help="BIQ2021 folder (holds Images/ and 'Train (Images and MOS).csv')", path="file")
    out: str = option(help="output folder for weights, metrics and logs", path="file")
    steps: int = option(2400, lo=0, help="optimizer steps")
    groups: int = option(8, lo=1, help="images per step (each gives 2-3 segments)")
    image_groups: int = option(8, lo=0, help="extra images per step seen only as their pristine segment "
                               "(opinion-score losses only)")
    lr: float = option(2e-3, lo=0.0, help="peak AdamW learning rate (warmup, then cosine)")
    weight_decay: float = option(1e-4, lo=0.0)
    warmup: int = option(100, lo=0, help="linear warmup steps")
    init: str | None = option(None, path="local", help="fine-tune this head instead of a new one: a .safetensors "
                              "head or a fast model name (e.g. vqametric-fast-0.5); its architecture is used "
                              "(use a lower --lr, e.g. 5e-4)")
    width: int | None = option(None, lo=1, help=f"HeadConfig.width (default: {HeadConfig.width}, or the --init "
                               "head's)")
    spatial_stride: int | None = option(None, lo=1, help="HeadConfig.spatial_stride: the spatial CNNs see frames "
                                        f"0, s, 2s, ... of each segment (default: {HeadConfig.spatial_stride}, or "
                                        "the --init head's)")
    arch: int | None = option(None, choices=[a for a in SUPPORTED_ARCHS if a != 6],
                              help="head architecture (HeadConfig.arch): 4 adds blockiness and still-step statistics, "
                                   f"5 the still step only (default: {ARCH}, or the --init head's)")
    margin: float = option(0.25, lo=0.0, help="temporal consistency margin (MOS units)")
    p_temporal: float = option(0.4, lo=0.0, hi=1.0, help="share of groups with a temporal perturbation")
    temporal_levels: int = option(2, choices=(1, 2), help="perturbed rows per temporal-ladder group: 2 also ranks "
                                  "a milder level above a worse one")
    spatial_weights: dict[str, float] = option({"exposure": 1.0, "colour": 1.0}, lo=0.0, names=tuple(SPATIAL_WEIGHTS),
                                               help="sampling weights of spatial ladders, NAME=W,... (others keep "
                                                    "data.SPATIAL_WEIGHTS)")
    p_resample: float = option(0.0, lo=0.0, hi=1.0, help="share of ladder groups whose image is first shrunk (by "
                               "data.RESAMPLE_RANGE) into a pristine source without the JPEG block grid")
    p_resample_images: float = option(0.0, lo=0.0, hi=1.0, help="the same for the opinion-only images (their MOS "
                                      "then labels the shrunk image)")
    seed: int = 0
    split_seed: int = option(0, help="seed of the 90/10 train/validation split")
    val_fraction: float = option(0.1, lo=0.0, hi=0.9)
    threads: int = option(2, lo=1, help="torch intra-op threads")
    workers: int = option(1, lo=0, help="data-generation worker processes (0: in-process)")
    version: str = option("0.5.0", help="version string stored in the weights")
    log_every: int = option(10, lo=1)
    val_every: int = option(500, lo=0, help="quick validation SRCC and temporal consistency every N steps (0: never)")
    val_quick: int = option(150, lo=0, help="validation images of the quick check (a quarter of them for temporal "
                            "consistency)")
    eval_quality: int = option(0, lo=0, help="validation images for SRCC/PLCC (0: all)")
    eval_ladder: int = option(24, lo=0, help="validation images for the ladder taus")
    eval_ladder_resampled: int = option(12, lo=0, help="validation images for the spatial ladders from grid-free "
                                        "(shrunk) sources")
    eval_scene: bool = option(True, help="the ladders on the generated demo scene (content with no JPEG history)")
    eval_temporal: int = option(100, lo=0, help="validation images for temporal consistency")
    vmaf: bool = option(True, help="the VMAF agreement on the compression and scaling ladders (needs imageio-ffmpeg)")
    evaluate_only: bool = option(False, help="skip training: evaluate the head.onnx already in --out and rewrite "
                                 "metrics.json")
    ladders: str = option("all", help="comma-separated ladders to evaluate (default: all)")
    limit_train: int = option(0, lo=0, help="use only the first N train images (smoke tests)")
    items_from_folder: bool = option(False, help="--data is a plain folder of images (MOS 3 for all; smoke tests "
                                     "only)")
    init_model: str | None = internal()    # "name version" of the init head, recorded in metrics.json

    def recorded(self) -> dict[str, Any]:
        """The settings ``metrics.json`` records (the folders left out)."""
        d = {k: v for k, v in to_table(self).items() if k not in ("data", "out")}
        if self.init_model is not None:
            d["init_model"] = self.init_model
        return d
