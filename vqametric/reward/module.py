"""``QualityReward``: the fast model as a differentiable, per-sample reward on decoded frames."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..backends.gradient_graph import for_gradients, run_head
from ..backends.head import head_vocabulary, load_head
from ..backends.pooling import pool_outputs, pooled_class_indices
from ..errors import InvalidOption, InvalidVideoInput
from ..io.clip import DEFAULT_TENSOR_FPS, checked_fps
from ..registry import DEFAULT_MODEL, ModelCard, get_card
from ..sampling.plan import SamplingConfig, make_plan
from ..sampling.reference import rgb_views
from .defences import apply_transforms, check_defences
from .views import ViewSchedule

LAYOUTS = ("BCTHW", "BTCHW")
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
RANGE_SLACK = 0.05          # values may leave the declared range by this share of its span (then clipped)
DEFAULT_DEFENCES = ("views", "crop")


class QualityReward(nn.Module):
    """Per-sample quality rewards for batches of generated videos, differentiable to every frame.

    Args:
        model: a fast model name (default ``"vqametric-fast"``), a :class:`ModelCard` or a path to a
            ``.safetensors`` head. Reasoning models generate text and have no gradient.
        layout: ``"BCTHW"`` (VideoX-Fun's ``BaseReward``, diffusers' decoded video) or ``"BTCHW"``;
            declared, never guessed.
        value_range: ``(0, 1)``, ``(-1, 1)`` (a VAE decoder's output) or ``(0, 255)``; values up to
            5 % of the span outside it are clipped, further ones are an error.
        fps: the frame rate of the videos (default 30); it sets how many segments a clip has.
        defences: what makes the reward hard to game in training mode (:data:`DEFENCES`): a tuple,
            a ``"+"``-joined string or ``"none"``. Default ``("views", "rescale", "noise")``, chosen
            with ``benchmarks/bench_reward_attack.py`` (docs/training-generators.md).
        num_views: in training mode, average the reward over this many independent random views.
        seed: seeds every random choice; the views of call ``c`` depend only on ``(seed, c)``.
        normalise: return ``(score - 1) / 4`` in [0, 1] instead of the 1-5 score.
        head: an in-memory head to use instead of the model's weights (tests, research); frames are
            then sampled as the head says (``head.sampling_config()``).
        sampling: overrides of the card's :class:`SamplingConfig` fields.
        compile: run the head through ``torch.compile`` (needs a C++ compiler on the CPU, Triton on
            CUDA; the first call of each input shape compiles, which takes minutes on a small CPU).

    In training mode (``reward.train()``, the default of a new module) each call draws new frame
    windows and fragment boxes and applies the pixel defences; in eval mode (``reward.eval()``) the
    reward is deterministic and equals the metric's score of the same frames
    (``vqametric.score(frames)``) up to float rounding.

    ``forward(video)``: ``video`` float ``(B, C, T, H, W)`` or ``(B, T, C, H, W)`` with ``C = 3``,
    any device, in ``value_range``, all ``B`` videos of one size; returns float32 ``(B,)`` rewards
    (1-5, or 0-1 with ``normalise``), differentiable with respect to ``video``. Works under
    ``torch.autocast``: bf16 runs the head in bf16; under fp16 the head runs in float32 (its
    statistics overflow float16); rewards come back in float32.

    Raises:
        InvalidOption: an unknown layout, value range or defence, or a reasoning model.
        InvalidVideoInput: a tensor of the wrong rank, channel count or dtype, NaN/Inf values, or
            values far outside ``value_range``.
    """

    def __init__(self, model: str | os.PathLike | ModelCard = DEFAULT_MODEL, *, layout: str,
                 value_range: Sequence[float], fps: float = DEFAULT_TENSOR_FPS,
                 defences: str | Sequence[str] | None = DEFAULT_DEFENCES, num_views: int = 1, seed: int = 0,
                 normalise: bool = False, head: nn.Module | None = None, sampling: dict[str, Any] | None = None,
                 compile: bool = False):
        super().__init__()
        if layout not in LAYOUTS:
            raise InvalidOption(f"layout must be one of {LAYOUTS}, got {layout!r}")
        rng = tuple(float(v) for v in value_range)
        if rng not in VALUE_RANGES:
            raise InvalidOption(f"value_range must be one of {[tuple(map(int, r)) for r in VALUE_RANGES]}, "
                                f"got {tuple(value_range)}")
        if not (isinstance(num_views, int) and num_views >= 1):
            raise InvalidOption(f"num_views must be a positive int, got {num_views!r}")
        card = get_card(model)
        if card.backend == "lmm":
            raise InvalidOption(f"model {card.name!r} generates text; it has no gradients (a reward needs a fast head)")
        base = head.sampling_config() if head is not None else card.sampling  # an in-memory head says how it samples
        if sampling or head is not None:
            card = get_card(card, sampling=SamplingConfig.from_dict({**base.to_dict(), **(sampling or {})}))
        self.card, self.layout, self.value_range = card, layout, rng
        self.fps = checked_fps(fps)
        self.defences = check_defences(defences)
        self.num_views, self.normalise = num_views, normalise
        self.schedule = ViewSchedule(seed)
        self.calls = 0
        if head is None:
            head, _ = load_head(card.weights_path("torch"))
        self.head = for_gradients(head)
        # not a submodule: it wraps self.head (moved with it), and state_dict must not hold the weights twice
        object.__setattr__(self, "_run_head", torch.compile(self.head, dynamic=False) if compile else self.head)
        config = self.head.config
        _, _, classes = head_vocabulary(config.arch)
        self._classes = pooled_class_indices(classes)

    def train(self, mode: bool = True) -> "QualityReward":
        """Training mode (stochastic views and defences) or, with ``False``, evaluation mode; the
        head itself always stays frozen in eval mode."""
        self.training = mode
        return self

    @property
    def stochastic(self) -> bool:
        return self.training and bool(self.defences)

    def __repr__(self) -> str:  # the head's layers are not what a user needs to see
        return (f"QualityReward(model={self.card.name!r}, layout={self.layout!r}, value_range={self.value_range}, "
                f"defences={self.defences}, num_views={self.num_views}, training={self.training})")

    # ------------------------------------------------------------------------------------------
    def frames(self, video: torch.Tensor) -> torch.Tensor:
        """``video`` in the declared layout and range -> float ``(B, T, 3, H, W)`` in [0, 1]."""
        if not isinstance(video, torch.Tensor):
            raise InvalidVideoInput(f"a reward takes a torch.Tensor, got {type(video).__name__}")
        if video.dim() != 5:
            raise InvalidVideoInput(f"expected a 5-D {self.layout} tensor, got shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise InvalidVideoInput(f"expected a floating-point tensor (gradients need one), got {video.dtype}")
        c_dim = 1 if self.layout == "BCTHW" else 2
        if video.shape[c_dim] != 3:
            other = "BTCHW" if self.layout == "BCTHW" else "BCTHW"
            hint = f"; this looks like {other}: pass layout={other!r}" if video.shape[3 - c_dim] == 3 else ""
            raise InvalidVideoInput(f"layout {self.layout} puts 3 RGB channels at dim {c_dim}, but shape is "
                                    f"{tuple(video.shape)}{hint}")
        if min(video.shape) == 0:
            raise InvalidVideoInput(f"the video tensor is empty (shape {tuple(video.shape)})")
        lo, hi = self.value_range
        with torch.no_grad():
            vmin, vmax = (float(v) for v in torch.aminmax(video.detach().float()))
        if not (torch.isfinite(torch.tensor([vmin, vmax])).all()):
            raise InvalidVideoInput("the video holds NaN or Inf values")
        slack = RANGE_SLACK * (hi - lo)
        if vmin < lo - slack or vmax > hi + slack:
            raise InvalidVideoInput(f"values span [{vmin:.3g}, {vmax:.3g}] but value_range={(lo, hi)} was declared; "
                                    "declare the range the frames are in")
        x = video.transpose(1, 2) if self.layout == "BCTHW" else video
        return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.frames(video)
        if not self.stochastic:
            return self._score(x, None)
        rewards = [self._score(x, self._next_call()) for _ in range(self.num_views)]
        return torch.stack(rewards).mean(0)

    def _next_call(self) -> int:
        call = self.calls
        self.calls += 1
        return call

    def _plan(self, t: int, h: int, w: int, call: int | None):
        """The metric's plan of a ``t``-frame ``h x w`` clip, or call ``call``'s random views of it."""
        plan = make_plan(t, h, w, self.card.sampling, fps=self.fps)
        return plan if call is None or "views" not in self.defences else self.schedule.plan(plan, t, call)

    def _score(self, x: torch.Tensor, call: int | None) -> torch.Tensor:
        """Rewards ``(B,)`` of frames ``(B, T, 3, H, W)`` in [0, 1]; ``call``: the stochastic call
        (its views and transforms) or None for the deterministic plan."""
        b, t = x.shape[:2]
        plan = self._plan(t, *x.shape[-2:], call)
        idx = torch.tensor(plan.frame_indices, device=x.device)
        sel = x.index_select(1, idx).flatten(0, 1)                       # (B * n, 3, H, W)
        if call is not None:
            sel = apply_transforms(sel, self.defences, self.schedule.rng(call, 1))
            if tuple(sel.shape[-2:]) != plan.source_size:                # cropped: fragments of the new size
                plan = self._plan(t, *sel.shape[-2:], call)
        views = rgb_views(sel, plan)
        k, n = plan.frames_per_segment, plan.num_segments
        frag, glob = (views[name].view(b * n, k, *views[name].shape[1:]) for name in ("fragments", "global_view"))
        out = run_head(self._run_head, frag, glob)
        rewards = torch.stack([pool_outputs({key: v[i * n:(i + 1) * n] for key, v in out.items()},
                                            self._classes).score for i in range(b)]).float()
        if not bool(torch.isfinite(rewards.detach()).all()):
            raise InvalidVideoInput("the model produced a non-finite reward; the frames are probably corrupt")
        return (rewards - 1.0) / 4.0 if self.normalise else rewards
