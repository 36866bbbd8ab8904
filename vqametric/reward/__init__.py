"""The quality model as a reward for training video generators (docs/training-generators.md).

:class:`QualityReward` scores batches of decoded frames, differentiably, with random views and
input transforms in training mode (:mod:`.views`, :mod:`.defences`) and the metric's
deterministic plan in eval mode.
"""
from .defences import DEFENCES
from .module import DEFAULT_DEFENCES, LAYOUTS, QualityReward

__all__ = ["QualityReward", "DEFENCES", "DEFAULT_DEFENCES", "LAYOUTS"]
