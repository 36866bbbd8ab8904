"""Training data for the fast head: BIQ2021 opinion scores and synthetic ladders around them.

BIQ2021 (github.com/nisarahmedrana/BIQ2021, 12,000 photos rated by 30 observers, MOS scaled to
0-1) is read from a local copy (see docs/training-head.md). Only ``Train (Images and MOS).csv``
(10,000 images) is used; it is split once, with a fixed seed, into train and validation. The
test CSV is the dataset's held-out benchmark split and is never opened here.

Every training sample is a *group* built from one image (:func:`make_group`): a moving clip
(:func:`~vqametric.train.fast.distortions.make_clip_from_image`) whose pristine segment carries the
image MOS (``1 + 4 * mos``), plus either two degraded copies along a spatial ladder (known order
pristine > level a > level b) or one temporally perturbed copy (pristine > perturbed). Head inputs
come from the project's own :func:`~vqametric.sampling.make_plan` and
:func:`~vqametric.sampling.preprocess_reference`, so training sees exactly the views inference
builds (only the fragment-offset seed is drawn per sample, as augmentation).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import av
import numpy as np
import torch

from ...backends.head import ATTRIBUTION_CLASSES, DISTORTIONS
from ...io.frames import RGBFrames
from ...sampling import SamplingConfig, make_plan, preprocess_reference
from . import distortions as D

TRAIN_CSV = "Train (Images and MOS).csv"
IMAGES_DIR = "Images"
SOURCE_URL = "https://github.com/nisarahmedrana/BIQ2021"
CLIP_FRAMES = 16


class DataNotFound(FileNotFoundError):
    """The BIQ2021 folder (or a file in it) is missing."""


@dataclass(frozen=True)
class ImageItem:
    """One BIQ2021 image: file name, path, MOS on the 1-5 scale (``1 + 4 * mos01``), raw MOS."""

    name: str
    path: str
    mos: float
    mos01: float


def _missing(what: str, data_dir: str) -> DataNotFound:
    return DataNotFound(
        f"{what} not found under {data_dir!r}. Get BIQ2021 with `git clone {SOURCE_URL} DIR` (about 420 MB; "
        f"it holds {IMAGES_DIR}/ and {TRAIN_CSV!r}) and pass --data DIR.")


def read_biq2021_train(data_dir: str | os.PathLike, check_images: bool = True) -> list[ImageItem]:
    """Rows of ``Train (Images and MOS).csv`` (columns ``Image Name``, ``MOS`` in 0-1), in file order."""
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise _missing("the BIQ2021 folder", data_dir)
    csv_path = os.path.join(data_dir, TRAIN_CSV)
    if not os.path.isfile(csv_path):
        raise _missing(repr(TRAIN_CSV), data_dir)
    items = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        try:
            name_col, mos_col = header.index("Image Name"), header.index("MOS")
        except ValueError as e:
            raise ValueError(f"{csv_path} has columns {header}; expected 'Image Name' and 'MOS'") from e
        for row in reader:
            if len(row) <= max(name_col, mos_col) or not row[name_col].strip():
                continue
            name, m = row[name_col].strip(), float(row[mos_col])
            if not 0.0 <= m <= 1.0:
                raise ValueError(f"{csv_path}: MOS {m} of {name!r} is outside 0-1")
            items.append(ImageItem(name, os.path.join(data_dir, IMAGES_DIR, name), 1.0 + 4.0 * m, m))
    if not items:
        raise ValueError(f"{csv_path} has no rows")
    if check_images:
        img_dir = os.path.join(data_dir, IMAGES_DIR)
        if not os.path.isdir(img_dir):
            raise _missing(f"the {IMAGES_DIR}/ folder", data_dir)
        # the CSV and the files may disagree on the case of the extension (ss02 (1014).JPG)
        by_lower = {n.lower(): n for n in os.listdir(img_dir)}
        items = [it if os.path.isfile(it.path) or it.name.lower() not in by_lower else
                 replace(it, path=os.path.join(img_dir, by_lower[it.name.lower()])) for it in items]
        missing = [it.name for it in items if not os.path.isfile(it.path)]
        if missing:
            raise _missing(f"{len(missing)} image(s) of the train CSV (e.g. {missing[0]!r})", data_dir)
    return items


def split_train_val(items: Sequence[ImageItem], val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[list[ImageItem], list[ImageItem]]:
    """Fixed-seed split: sort by name, permute with ``default_rng(seed)``, the first
    ``round(val_fraction * n)`` of the permutation are validation. Returns ``(train, val)``."""
    ordered = sorted(items, key=lambda it: it.name)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_val = int(round(val_fraction * len(ordered)))
    val_idx = set(perm[:n_val].tolist())
    train = [it for i, it in enumerate(ordered) if i not in val_idx]
    val = [ordered[i] for i in sorted(val_idx)]
    return train, val


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (decoded with PyAV)."""
    with av.open(os.fspath(path)) as c:
        frame = next(c.decode(video=0))
        return frame.to_ndarray(format="rgb24")


# ---------------------------------------------------------------------------------------------- views
def frames_to_views(frames: np.ndarray, plan) -> dict[str, torch.Tensor]:
    """Frames ``(n * K, H, W, 3)`` uint8, segment-major, -> ``{"fragments": (n, K, 3, F, F),
    "global_view": (n, K, 3, S, S)}`` through :func:`preprocess_reference` with ``plan``."""
    k = plan.frames_per_segment
    views = preprocess_reference(RGBFrames(torch.from_numpy(np.ascontiguousarray(frames))), plan)
    return {name: v.view(-1, k, *v.shape[1:]) for name, v in views.items()}


def segment_sources(plan, segment: int) -> np.ndarray:
    """Frame indices (into the planned clip) of one segment."""
    k = plan.frames_per_segment
    return np.asarray(plan.frame_indices[segment * k:(segment + 1) * k])


def is_abnormal(src: np.ndarray) -> bool:
    """Whether consecutive displayed frames are not consecutive source frames (or are black)."""
    return bool((src == D.BLACK).any() or (np.diff(src) != 1).any())


# ---------------------------------------------------------------------------------------------- groups
SPATIAL_WEIGHTS = {"blur": 1.0, "noise": 1.0, "jpeg": 1.0, "x264": 1.0, "x265": 0.7, "av1": 0.7, "scaling": 1.0,
                   "exposure": 0.6, "colour": 0.6}
TEMPORAL_KINDS = ("stutter", "freeze", "frame_drop", "flicker", "shake", "shuffle", "local_shuffle", "jitter",
                  "duplicate", "black")   # "reverse" is left out of training: see docs/training-head.md
RESAMPLE_RANGE = (0.6, 0.85)   # shrink factors of grid-free pristine sources (make_group's p_resample options)
INDEX_LADDERS = {"stutter": D.stutter_indices, "freeze": D.freeze_indices, "frame_drop": D.drop_indices}


@dataclass
class Group:
    """Head inputs and targets of one image's samples; row 0 is the pristine segment.

    ``kind``: ``"spatial"`` (rows: pristine, level a, level b), ``"temporal"`` (rows: pristine,
    perturbed) or ``"image"`` (the pristine row alone: one more opinion score for the regression
    and batch-ranking losses, at a third of a spatial group's cost). ``attribution``: class index
    per row; ``severity``: ``(rows, len(DISTORTIONS))`` targets with ``severity_mask`` saying
    which rows count.
    """

    fragments: torch.Tensor
    global_view: torch.Tensor
    mos: float
    kind: str
    distortion: str
    levels: tuple[int, ...]
    attribution: list[int]
    severity: torch.Tensor
    severity_mask: list[bool]
    info: dict[str, Any] = field(default_factory=dict)


def _class_index(name: str | None) -> int:
    return ATTRIBUTION_CLASSES.index(name) if name is not None else -100


def _severity_row(cls: str | None, value: float) -> torch.Tensor:
    row = torch.zeros(len(DISTORTIONS))
    if cls is not None:
        row[DISTORTIONS.index(cls)] = value
    return row


def make_group(image: np.ndarray, mos: float, sampling: SamplingConfig, seed: int,
               p_temporal: float = 0.4, p_zoom: float = 0.25, num_frames: int = CLIP_FRAMES,
               kind: str | None = None, distortion: str | None = None, temporal_levels: int = 1,
               spatial_weights: dict[str, float] | None = None, p_resample: float = 0.0,
               resample_range: tuple[float, float] = RESAMPLE_RANGE, p_resample_images: float = 0.0) -> Group:
    """One training group from an image (see the module docstring); fully determined by ``seed``.

    ``temporal_levels=2``: a temporal ladder (:data:`~vqametric.train.fast.distortions.TEMPORAL_LADDERS`)
    gives two perturbed rows at levels ``a < b`` (known order pristine > a > b), like a spatial
    ladder; the other perturbations keep one row. ``spatial_weights``: sampling weight per spatial
    ladder (default :data:`SPATIAL_WEIGHTS`). ``p_resample``: the share of spatial and temporal
    groups whose image is first shrunk by a factor drawn uniformly from ``resample_range``
    (:func:`~vqametric.train.fast.distortions.downsample_image`), so that some pristine sources have no
    JPEG block grid; ``p_resample_images``: the same for image-only groups. Drawn from its own
    stream, so both at 0 leave every other draw as it was."""
    info: dict[str, Any] = {}
    share = p_resample_images if kind == "image" else p_resample
    if share > 0:
        rrng = np.random.default_rng([seed, 1])
        if rrng.random() < share:
            info["resampled"] = float(rrng.uniform(*resample_range))
            image = D.downsample_image(image, info["resampled"])
    rng = np.random.default_rng(seed)
    motion = "zoom" if rng.random() < p_zoom else "pan"
    clip = D.make_clip_from_image(image, num_frames, motion, seed=int(rng.integers(2 ** 31)))
    t, h, w = clip.shape[:3]
    plan = make_plan(t, h, w, replace(sampling, seed=int(rng.integers(2 ** 31))))
    seg = int(rng.integers(plan.num_segments))
    kind = kind or ("temporal" if rng.random() < p_temporal else "spatial")
    dseed = int(rng.integers(2 ** 31))
    if kind == "image":
        views = frames_to_views(clip[segment_sources(plan, seg)], plan)
        return Group(views["fragments"], views["global_view"], mos, "image", "none", (0,), [0],
                     _severity_row(None, 0)[None], [True], {"motion": motion, "segment": seg, **info})
    if kind == "spatial":
        names = list(SPATIAL_WEIGHTS)
        if distortion is None:
            weights = dict(SPATIAL_WEIGHTS, **(spatial_weights or {}))
            wts = np.array([weights[n] for n in names])
            distortion = names[int(rng.choice(len(names), p=wts / wts.sum()))]
        a, b = sorted(rng.choice(np.arange(1, 6), size=2, replace=False).tolist())
        fn, cls = D.LADDERS[distortion]
        src = segment_sources(plan, seg)
        if distortion in ("x264", "x265", "av1"):
            # codecs see the whole clip (prediction across frames); keep the planned segment's frames
            rows = [clip[src], fn(clip, a, seed=dseed)[src], fn(clip, b, seed=dseed)[src]]
        else:
            base = clip[src]
            rows = [base, fn(base, a, seed=dseed), fn(base, b, seed=dseed)]
        views = frames_to_views(np.concatenate(rows), plan)
        return Group(views["fragments"], views["global_view"], mos, "spatial", distortion, (0, a, b),
                     [0, _class_index(cls), _class_index(cls)],
                     torch.stack([_severity_row(None, 0), _severity_row(cls, a / 5), _severity_row(cls, b / 5)]),
                     [True, True, True], {"motion": motion, "segment": seg, **info})
    if kind != "temporal":
        raise ValueError(f"kind must be 'spatial', 'temporal' or 'image', got {kind!r}")
    if distortion is None:
        distortion = TEMPORAL_KINDS[int(rng.integers(len(TEMPORAL_KINDS)))]
    if temporal_levels == 2 and distortion in D.TEMPORAL_LADDERS:
        levels = sorted(rng.choice(np.arange(1, 6), size=2, replace=False).tolist())
    else:
        levels = [int(rng.integers(1, 6))]
    rows, anchor_src = [], None        # rows: (perturbed frames, class, severity, severity counts, level)
    for i, level in enumerate(levels):
        # each level draws its perturbation with its own seed
        o_src, row, name = _temporal_row(clip, plan, sampling, seg, distortion, level, dseed + 1000 * i, rng)
        anchor_src = o_src if anchor_src is None else anchor_src
        if name != distortion:             # the strong-stutter fallback: one perturbed row only
            rows, distortion = [row], name
            break
        rows.append(row)
    perts, classes, sevs, masks, used = zip(*rows)
    views = frames_to_views(np.concatenate([clip[anchor_src], *perts]), plan)
    return Group(views["fragments"], views["global_view"], mos, "temporal", distortion, (0, *used),
                 [0] + [_class_index(c) for c in classes],
                 torch.stack([_severity_row(None, 0)] + [_severity_row(c, v) for c, v in zip(classes, sevs)]),
                 [True, *masks], {"motion": motion, "segment": seg, **info})


def _temporal_row(clip: np.ndarray, plan, sampling: SamplingConfig, seg: int, distortion: str, level: int,
                  dseed: int, rng: np.random.Generator):
    """One temporally perturbed segment -> ``(original frame indices, (perturbed frames (K, H, W, 3),
    class, severity, severity counts, level), distortion)``; the distortion is ``"stutter"`` when
    nothing of ``distortion`` was visible. Index perturbations take a planned segment where the
    perturbation is visible (the original is the same stretch unperturbed)."""
    t, h, w = clip.shape[:3]
    k = sampling.frames_per_segment
    if distortion in ("flicker", "shake"):
        src = segment_sources(plan, seg)
        pert = D.degrade(clip, distortion, level, seed=dseed)[src]
        return src, (pert, D.LADDERS[distortion][1], level / 5, True, level), distortion
    pert_src = None
    for attempt in range(8):
        s = dseed + attempt
        idx = (INDEX_LADDERS[distortion](t, level, s) if distortion in INDEX_LADDERS
               else D.temporal_perturbation_indices(distortion, t, s))
        pplan = make_plan(len(idx), h, w, replace(sampling, seed=plan.seed))
        candidates = [j for j in range(pplan.num_segments) if is_abnormal(idx[segment_sources(pplan, j)])]
        if candidates:
            pert_src = idx[segment_sources(pplan, candidates[int(rng.integers(len(candidates)))])]
            break
    if pert_src is None:       # nothing visible in any planned segment: fall back to a strong stutter
        distortion, level = "stutter", 5
        pert_src = D.stutter_indices(t, 5, 0)[:k]
    visible = pert_src[pert_src >= 0]
    anchor = int(min(visible.min() if visible.size else 0, t - k))
    cls = D.LADDERS[distortion][1] if distortion in D.LADDERS else D.PERTURBATION_CLASS[distortion]
    sev, use_sev = (level / 5, True) if distortion in INDEX_LADDERS else (0.0, False)
    row = (D.apply_indices(clip, pert_src), cls, sev, use_sev, level if distortion in INDEX_LADDERS else 0)
    return np.arange(anchor, anchor + k), row, distortion


@dataclass
class Batch:
    """Concatenated groups: head inputs ``(N, K, ...)`` and the row bookkeeping of the losses."""

    fragments: torch.Tensor
    global_view: torch.Tensor
    pristine_rows: torch.Tensor           # row of each group's pristine segment
    mos: torch.Tensor                     # MOS of each group (1-5)
    ordered_pairs: torch.Tensor           # (P, 2) rows (better, worse) along spatial and temporal ladders
    temporal_pairs: torch.Tensor          # (Q, 2) rows (original, perturbed)
    attribution: torch.Tensor             # (N,) class index or -100
    severity: torch.Tensor                # (N, len(DISTORTIONS))
    severity_mask: torch.Tensor           # (N,) bool
    distortions: list[str]


def collate(groups: Sequence[Group]) -> Batch:
    frags, globs, pristine, mos, ordered, temporal = [], [], [], [], [], []
    attr, sev, mask, names = [], [], [], []
    row = 0
    for g in groups:
        n = g.fragments.shape[0]
        frags.append(g.fragments)
        globs.append(g.global_view)
        pristine.append(row)
        mos.append(g.mos)
        if g.kind == "spatial":
            ordered += [(row, row + 1), (row + 1, row + 2), (row, row + 2)]
        elif g.kind == "temporal":
            temporal += [(row, row + j) for j in range(1, n)]     # the original above every perturbed row
            ordered += [(row + j, row + j + 1) for j in range(1, n - 1)]   # and a milder level above a worse one
        attr += g.attribution
        sev.append(g.severity)
        mask += g.severity_mask
        names.append(g.distortion)
        row += n
    return Batch(torch.cat(frags), torch.cat(globs), torch.tensor(pristine), torch.tensor(mos, dtype=torch.float32),
                 torch.tensor(ordered, dtype=torch.long).view(-1, 2), torch.tensor(temporal, dtype=torch.long).view(-1, 2),
                 torch.tensor(attr), torch.cat(sev), torch.tensor(mask), names)


class GroupBatches(torch.utils.data.IterableDataset):
    """Batches ``start .. steps-1`` of ``groups_per_batch`` groups plus ``image_groups`` image-only
    groups (kind ``"image"``); batch ``i`` depends only on ``(seed, i)`` (so worker count and
    restarts do not change what is trained on)."""

    def __init__(self, items: Sequence[ImageItem], sampling: SamplingConfig, steps: int, groups_per_batch: int,
                 seed: int = 0, start: int = 0, image_groups: int = 0, **group_kwargs: Any):
        """``group_kwargs`` go to :func:`make_group` (``p_temporal``, ``temporal_levels``, ...)."""
        self.items, self.sampling = list(items), sampling
        self.steps, self.groups_per_batch, self.seed, self.start = steps, groups_per_batch, seed, start
        self.image_groups = image_groups
        self.group_kwargs = group_kwargs

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        # each image once per pass over the data: the pass order is a seeded permutation
        per_batch = self.groups_per_batch + self.image_groups
        per_pass = max(1, len(self.items) // per_batch)
        epoch, pos = divmod(step, per_pass)
        order = np.random.default_rng([self.seed, 1_000_003, epoch]).permutation(len(self.items))
        picks = order[pos * per_batch:(pos + 1) * per_batch]
        groups = []
        for j, i in enumerate(picks):
            it = self.items[int(i)]
            kw = self.group_kwargs if j < self.groups_per_batch else dict(self.group_kwargs, kind="image")
            groups.append(make_group(load_image(it.path), it.mos, self.sampling, int(rng.integers(2 ** 62)), **kw))
        return collate(groups)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            torch.set_num_threads(1)
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + wid, self.steps, nw):
            yield step, self.batch(step)


def items_from_images(folder: str | os.PathLike, mos: dict[str, float] | None = None) -> list[ImageItem]:
    """Image files of a folder as items (MOS 3 unless given; for smoke tests and custom data)."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    mos = mos or {}
    return [ImageItem(n, str(folder / n), float(mos.get(n, 3.0)), (float(mos.get(n, 3.0)) - 1) / 4) for n in names]
