"""Scoring backends: the fast head (PyTorch or ONNX Runtime) and reasoning models (``lmm``)."""
from ..errors import BackendUnavailable, InvalidOption
from .head import ATTRIBUTION_CLASSES, DISTORTIONS, FastHead, HeadConfig, load_head, load_trainable_head, save_head

__all__ = ["FastHead", "HeadConfig", "save_head", "load_head", "load_trainable_head", "DISTORTIONS",
           "ATTRIBUTION_CLASSES", "build_scorer"]


def build_scorer(card, device=None, runtime=None, requires_grad=False, head=None, **lmm_options):
    """The scorer for a model card's backend. ``lmm_options`` (``checkpoint``, ``dtype``, generation
    options ...) go to the reasoning-model scorer of ``backend="lmm"`` cards."""
    if card.backend == "lmm":
        from .lmm import LMMScorer  # optional: reasoning models (transformers)
        return LMMScorer(card, device=device, runtime=runtime, requires_grad=requires_grad, head=head, **lmm_options)
    if lmm_options:
        raise InvalidOption(f"option(s) {sorted(lmm_options)} apply to reasoning models only; {card.name!r} is a "
                         f"{card.backend} model")
    if card.backend == "fast-head":
        from .fast import FastScorer  # lazy: only the chosen backend is imported
        return FastScorer(card, device=device, runtime=runtime, requires_grad=requires_grad, head=head)
    raise BackendUnavailable(f"model {card.name!r} needs the {card.backend!r} backend, which this version "
                             "of vqametric does not provide")
