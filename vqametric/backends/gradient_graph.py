"""A frozen head prepared for back-propagation into pixels on the CPU.

Rewards for video generators need the gradient of the score with respect to the frames, not to
the head's weights. Two things make that slow in eager PyTorch on a CPU:

* batch normalisation in eval mode is an affine map, but eager mode still runs it (and its
  backward) as a separate pass over every activation;
* oneDNN convolutions on contiguous (NCHW) tensors reorder their inputs and gradients to its
  blocked layout on every call; in channels-last (NHWC) they do not (depthwise convolutions,
  most of EfficientNet-Lite, gain the most).

:func:`for_gradients` returns a copy of a head with each ``Conv2d`` + ``BatchNorm2d`` pair folded
into one convolution, its 4-D weights in channels-last layout and every parameter frozen. Its
outputs equal the original's up to float rounding (about 1e-6 on the 1-5 scale).

:func:`run_head` calls a head under the caller's autocast: bf16 as asked, but float16 is turned
off for the head (its image statistics, MSCN variances and feature standardisers, overflow it).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential`` into
    one ``Conv2d`` (in place, eval-mode statistics); returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            layers, folded, i = list(child), [], 0
            while i < len(layers):
                a, b = layers[i], layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.track_running_stats:
                    folded.append(fuse_conv_bn_eval(a.eval(), b.eval()))
                    i += 2
                else:
                    folded.append(a)
                    i += 1
            if len(folded) != len(layers):
                child = nn.Sequential(*folded)
                setattr(module, name, child)
        fold_batch_norms(child)
    return module


def for_gradients(head: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy of ``head`` with batch norms folded and channels-last weights (see
    the module docstring). The original is left as it was."""
    g = copy.deepcopy(head).eval()
    fold_batch_norms(g)
    for p in g.parameters():
        p.requires_grad_(False)
    return g.to(memory_format=torch.channels_last)


def run_head(head: nn.Module, fragments: torch.Tensor, global_view: torch.Tensor) -> dict[str, torch.Tensor]:
    """``head(fragments, global_view)`` (see :mod:`vqametric.backends.fusion_head` for shapes), in
    float32 when the caller's autocast asks for float16 (module docstring)."""
    dev = fragments.device.type
    if torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.float16:
        with torch.autocast(dev, enabled=False):
            return head(fragments.float(), global_view.float())
    return head(fragments, global_view)
