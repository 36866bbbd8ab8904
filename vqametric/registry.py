"""Model cards: one table of every model vqametric can run, as data.

A :class:`ModelCard` names a backend, its weights, its sampling configuration and its score range.
Built-in cards are registered below; users add their own with :func:`register_model`, and a path
to a ``.onnx`` or ``.safetensors`` head is accepted wherever a model name is (its card is read from
the file's metadata).
"""
from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ModelNotFound, VQAMetricError, WeightsNotFound
from .sampling.plan import SamplingConfig
from .weightfile import read_head_metadata

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "vqametric-fast"
COMPACT_MODEL = "vqametric-fast-0.5"   # the compact head (architecture 3) that new compact heads start from


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to build and describe a model.

    ``weights`` maps a runtime (``"onnx"``, ``"torch"``) to a file; relative paths are looked up in
    the package's ``weights/`` folder. ``accuracy`` holds measured numbers with the data and command
    that produced them (see docs/models.md).
    """

    name: str
    backend: str
    description: str
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    weights: dict[str, str] = field(default_factory=dict)
    version: str = "0"
    score_range: tuple[float, float] = (1.0, 5.0)
    lower_better: bool = False
    dimensions: tuple[str, ...] = ()
    default_runtime: str = "onnx"
    accuracy: dict[str, Any] = field(default_factory=dict)

    def weights_path(self, runtime: str) -> str:
        """Absolute path of the weights for ``runtime``; raises :class:`WeightsNotFound`."""
        rel = self.weights.get(runtime)
        if rel is None:
            raise WeightsNotFound(f"model {self.name!r} has no {runtime} weights (it has: "
                                  f"{', '.join(self.weights) or 'none'}); choose runtime= one of those")
        path = rel if os.path.isabs(rel) else str(WEIGHTS_DIR / rel)
        if not os.path.isfile(path):
            raise WeightsNotFound(f"weights of model {self.name!r} are not installed ({os.path.basename(path)} is not in "
                                  "the package's weights folder; `vqametric models` shows which models this version "
                                  "ships); pass model=PATH to score with a .onnx/.safetensors head")
        return path

    def available_runtimes(self) -> list[str]:
        out = []
        for rt in self.weights:
            try:
                self.weights_path(rt)
                out.append(rt)
            except WeightsNotFound:
                pass
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "version": self.version,
                "score_range": list(self.score_range), "lower_better": self.lower_better,
                "runtimes": self.available_runtimes(), "dimensions": list(self.dimensions),
                "description": self.description}


_CARDS: dict[str, ModelCard] = {}


def register_model(card: ModelCard, overwrite: bool = False) -> ModelCard:
    """Add ``card`` to the registry (``overwrite=True`` to replace a card of the same name)."""
    if card.name in _CARDS and not overwrite:
        raise ValueError(f"a model named {card.name!r} is already registered; pass overwrite=True")
    _CARDS[card.name] = card
    return card


USER_MODELS_ENV = "VQAMETRIC_MODELS"
_USER_SCANNED: dict[str, tuple] = {}  # path -> (mtime, size) when last read
_USER_NAMES: set[str] = set()           # names registered from the user models folder


def user_models_dir() -> str:
    """Folder of heads installed for use by name (``vqametric train distill`` writes there):
    ``$VQAMETRIC_MODELS``, default ``~/.cache/vqametric/models``."""
    return os.environ.get(USER_MODELS_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "vqametric", "models")


def install_head(paths: list[str], name: str) -> list[str]:
    """Copy a head's weight files (``.onnx`` / ``.safetensors``) into :func:`user_models_dir` as
    ``NAME.onnx`` / ``NAME.safetensors`` so that ``get_card(NAME)`` finds them in any process."""

    folder = user_models_dir()
    os.makedirs(folder, exist_ok=True)
    out = []
    for p in paths:
        dst = os.path.join(folder, name + os.path.splitext(p)[1])
        shutil.copyfile(p, dst)
        out.append(dst)
    _scan_user_models()
    return out


def _scan_user_models() -> None:
    """Register the heads in :func:`user_models_dir` (built-in names are never replaced)."""
    folder = user_models_dir()
    try:
        entries = sorted(f for f in os.listdir(folder) if f.endswith((".onnx", ".safetensors")))
    except OSError:
        return
    for f in entries:
        path = os.path.join(folder, f)
        stamp = (os.stat(path).st_mtime_ns, os.stat(path).st_size)
        if _USER_SCANNED.get(path) == stamp:
            continue
        _USER_SCANNED[path] = stamp
        name = os.path.splitext(f)[0]
        if name in _CARDS and name not in _USER_NAMES:
            continue  # never shadow a built-in or registered card
        try:
            card = card_from_weights(path)
        except VQAMetricError:
            continue  # not a vqametric head: ignore it
        _CARDS[name] = replace(card, name=name, description=f"head installed in {folder}")
        _USER_NAMES.add(name)


def list_models(backend: str | None = None, installed_only: bool = False) -> list[str]:
    """Names of registered models, optionally of one backend or only those whose weights are present.

    Heads saved in the user models folder (see ``user_models_dir``) are registered on each call.

    Args:
        backend: only models of this backend: ``"fast-head"`` (the fast models) or ``"lmm"`` (the
            reasoning models); None (default) for all.
        installed_only: only models whose weights are on this machine (for any runtime).

    Returns:
        The model names, a sorted ``list`` of ``str``; each works as ``model=`` of
        :func:`vqametric.score` and :func:`get_card`.

    Raises:
        Nothing: an unknown ``backend`` gives an empty list.

    Example:
        >>> import vqametric
        >>> "vqametric-fast" in vqametric.list_models(installed_only=True)
        True
        >>> "vqathinker-8b" in vqametric.list_models(backend="lmm")
        True
    """
    _scan_user_models()
    cards = [c for c in _CARDS.values() if backend is None or c.backend == backend]
    if installed_only:
        cards = [c for c in cards if c.available_runtimes()]
    return sorted(c.name for c in cards)


def card_from_weights(path: str | os.PathLike) -> ModelCard:
    """A card for a head weights file, from the metadata stored in it."""
    path = os.path.abspath(os.fspath(path))
    meta = read_head_metadata(path)
    runtime = "onnx" if path.endswith(".onnx") else "torch"
    weights = {runtime: path}
    sibling = path[: -len(".onnx")] + ".safetensors" if runtime == "onnx" else path[: -len(".safetensors")] + ".onnx"
    if os.path.isfile(sibling):
        weights["torch" if runtime == "onnx" else "onnx"] = sibling
    return ModelCard(name=str(meta.get("name", os.path.basename(path))), backend="fast-head",
                     description=f"fast head loaded from {os.path.basename(path)}",
                     sampling=SamplingConfig.from_dict(meta["sampling"]), weights=weights,
                     version=str(meta.get("version", "0")), default_runtime=runtime)


def get_card(model: str | os.PathLike | ModelCard, **overrides: Any) -> ModelCard:
    """Look up a card by name (or read one from a weights path); ``overrides`` replace fields.

    Args:
        model: a registered name (see :func:`list_models`), a path to a head weights file
            (``.onnx`` / ``.safetensors``; the card is read from its metadata), or a
            :class:`ModelCard` (returned as is, with ``overrides`` applied).
        **overrides: :class:`ModelCard` fields to replace, e.g. ``sampling=SamplingConfig(...)``.

    Returns:
        The :class:`ModelCard` (a frozen copy when ``overrides`` are given; the registry is not
        changed).

    Raises:
        ModelNotFound: no model is registered under ``model`` and it is not a weights path (the
            message suggests close names).
        WeightsNotFound: ``model`` is a weights path whose file is missing or unreadable.

    Example:
        >>> from vqametric import get_card
        >>> card = get_card("vqametric-fast")
        >>> card.backend, tuple(card.score_range), card.lower_better
        ('fast-head', (1.0, 5.0), False)
    """
    if isinstance(model, (str, os.PathLike)) and str(model) not in _CARDS:
        _scan_user_models()
    if isinstance(model, ModelCard):
        card = model
    elif isinstance(model, (str, os.PathLike)) and str(model) in _CARDS:
        card = _CARDS[str(model)]
    elif isinstance(model, (str, os.PathLike)) and str(model).endswith((".onnx", ".safetensors", ".pt", ".pth",
                                                                            ".bin", ".ckpt", ".pkl")):
        card = card_from_weights(model)
    else:
        close = difflib.get_close_matches(str(model), list(_CARDS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "."
        raise ModelNotFound(f"no model named {model!r}{hint} Known models: {', '.join(list_models()) or 'none'}. "
                            "A path to a .onnx or .safetensors head also works.")
    return replace(card, **overrides) if overrides else card


register_model(ModelCard(
    name=DEFAULT_MODEL,
    backend="fast-head",
    description="ImageNet EfficientNet-Lite0 features fused with the compact spatial + temporal head "
                "(head architecture 6; see docs/models.md)",
    sampling=SamplingConfig(num_segments=4, frames_per_segment=4, fragment_grid=7, fragment_patch=32,
                            global_size=224, segment_seconds=1.0, max_segments=16),
    weights={"onnx": "vqametric-fast.onnx", "torch": "vqametric-fast.safetensors"},
    version="1.2.0",
    # measured through vqametric.score on files by `python -m vqametric.train.fast.user_eval --data BIQ2021
    # --out OUT --images 1000 --sources 60 --attribution 40` (docs/models.md)
    accuracy={
        "validation": {"data": "BIQ2021 train CSV, fixed 90/10 split (seed 0), 1000 validation photos scored as files",
                       "srcc": 0.8195, "plcc_logistic": 0.859, "krcc": 0.629,
                       "pan_clips": {"srcc": 0.823, "plcc_logistic": 0.861}},
        "x264_crf_18_22_26_30_strictly_ordered": 0.883,
        "still_static_pan_within_0.25": 0.717, "stills_called_stutter_or_freeze": 0.0,
        "one_second_defect_drops_10s_clip_by_0.5": {"black": 0.933, "frozen": 0.883, "blurred": 0.883},
        "attribution_top1": 0.800,
        "goals_met": False,
    },
))

register_model(ModelCard(
    name=COMPACT_MODEL,
    backend="fast-head",
    description="the previous default: compact spatial + temporal head trained from scratch (validation SRCC 0.69)",
    sampling=SamplingConfig(num_segments=4, frames_per_segment=4, fragment_grid=7, fragment_patch=32,
                            global_size=128),
    weights={"onnx": "vqametric-fast-0.5.onnx", "torch": "vqametric-fast-0.5.safetensors"},
    version="0.5.0",
    # measured by `python -m vqametric.train.fast.head_trainer --data BIQ2021 --out OUT` (docs/training-head.md)
    accuracy={
        "validation": {"data": "BIQ2021 train CSV, fixed 90/10 split (seed 0), 1000 validation images",
                       "srcc": 0.695, "plcc_logistic": 0.789, "krcc": 0.507},
        "ladder_kendall_tau": {"mean": 0.890, "spatial": 0.881, "temporal": 0.908, "images": 24},
        "temporal_consistency": {"all_six_perturbations": 0.907, "without_reverse": 0.994,
                                 "without_reverse_by_0.1": 0.988, "untrained_head_without_reverse": 0.97,
                                 "images": 100},
        "vmaf_srcc_within_ladder": {"x264": 0.913, "x265": 0.975, "av1": 0.942, "scaling": 1.0, "images": 24},
        "onnx_vs_torch_max_abs": 6.0e-7,
        "goals_met": False,
    },
))


# Reasoning models (backend "lmm", see docs/reasoning.md). ``default_runtime`` names the adapter
# family; ``weights["hub"]`` is the Hugging Face Hub id, downloaded only when passed as checkpoint=.
_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
_CLIP = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}
ULTRAVQA_DIMENSIONS = ("Motion Quality", "Motion Amplitude", "Aesthetic Quality", "Content Quality", "Clarity Quality")

register_model(ModelCard(
    name="vqathinker-8b",
    backend="lmm",
    description="VQAThinker (InternVL3-8B + SlowFast motion token): 1-5 score with its reasoning; 12 frames at 560px",
    sampling=SamplingConfig(num_segments=12, frames_per_segment=1, fragment_grid=0, fragment_patch=0,
                            global_size=560, interpolation="bicubic", **_IMAGENET),
    weights={"hub": "kkkkkklinhan/InternVL3-VQAThinker-8B"},
    version="1.0",
    default_runtime="vqathinker",
))
register_model(ModelCard(
    name="visualquality-r1-7b",
    backend="lmm",
    description="VisualQuality-R1 (Qwen2.5-VL-7B, RL-to-rank): 1-5 score with its reasoning; 16 frames, 448^2 px each",
    sampling=SamplingConfig(num_segments=16, frames_per_segment=1, fragment_grid=0, fragment_patch=0,
                            global_size=448, interpolation="bicubic", **_CLIP),
    weights={"hub": "TianheWu/VisualQuality-R1-7B"},
    version="1.0",
    default_runtime="qwen2.5-vl",
))
register_model(ModelCard(
    name="lmm-dimensions",
    backend="lmm",
    description="any supported reasoning checkpoint (checkpoint=...) asked for the five UltraVQA dimension ratings",
    sampling=SamplingConfig(num_segments=12, frames_per_segment=1, fragment_grid=0, fragment_patch=0,
                            global_size=448, interpolation="bicubic", **_IMAGENET),
    version="1.0",
    dimensions=ULTRAVQA_DIMENSIONS,
    default_runtime="auto",
))
