"""The readouts' fit of head architecture 6 (``vqametric.train.fast.fusion_trainer.fit_readouts``) on
a small cache of made-up frozen features: which rows pair up, and what the codec margin does."""
import numpy as np
import pytest
import torch

from vqametric.backends.efficientnet_lite import FEATURES
from vqametric.backends.fusion_head import FUSION_ARCH, FusionHead
from vqametric.backends.head import HeadConfig
from vqametric.train.fast import fusion_trainer as T


def _cache(n_images: int = 24, seed: int = 0) -> tuple[FusionHead, dict[str, np.ndarray]]:
    """Per image a pristine row (target 3) and a codec triple (CRF ranks 0, 1, 2); the codec rows'
    spatial features carry the rank in one coordinate."""
    head = FusionHead(HeadConfig(arch=FUSION_ARCH, global_size=32, width=8))
    rng = np.random.default_rng(seed)
    roles, ranks, imgs = [], [], []
    for i in range(n_images):
        roles += ["pristine", "codec", "codec", "codec"]
        ranks += [0, 0, 1, 2]
        imgs += [i] * 4
    n = len(roles)
    spatial = rng.normal(size=(n, head.n_spatial)).astype(np.float32)
    spatial[:, 0] = np.asarray(ranks, np.float32) * 0.5
    cache = {"backbone": rng.normal(size=(n, FEATURES)).astype(np.float32), "spatial": spatial,
             "temporal": rng.normal(size=(n, head.n_temporal)).astype(np.float32),
             "motion": np.full(n, 0.01, np.float32), "image": np.asarray(imgs, np.int64),
             "role": np.asarray(roles), "ladder": np.asarray(["", "mild_x264", "mild_x264", "mild_x264"] * n_images),
             "rank": np.asarray(ranks, np.int64),
             "target": np.asarray([3.0, 3.0, np.nan, np.nan] * n_images, np.float32),
             "cls": np.zeros(n, np.int64), "severity": np.zeros((n, 11), np.float32),
             "severity_mask": np.zeros(n, bool)}
    return head, cache


def test_codec_rows_pair_in_crf_order_within_an_image():
    _, cache = _cache(2)
    better, worse = T._pairs(cache)
    pairs = set(zip(better.tolist(), worse.tolist()))
    # image 0: rows 1, 2, 3 are CRF ranks 0, 1, 2 -> (1, 2), (1, 3), (2, 3); nothing across images
    assert {(1, 2), (1, 3), (2, 3), (5, 6), (5, 7), (6, 7)} == pairs


def test_the_codec_margin_orders_the_crf_rows(monkeypatch):
    head, cache = _cache()
    weights = {k: 0.0 for k in T.LOSS_WEIGHTS}
    weights["codec"] = 1.0
    monkeypatch.setattr(T, "LOSS_WEIGHTS", weights)
    torch.manual_seed(0)
    T.fit_readouts(head, cache, np.arange(24), epochs=30, lr=3e-3, log=lambda m: None)
    out = head.readout({k: torch.from_numpy(cache[k]) for k in T.FEATURE_KEYS})["score"].detach().numpy()
    s = out.reshape(24, 4)[:, 1:]
    gaps = s[:, :-1] - s[:, 1:]                       # CRF rank r minus rank r + 1: must be positive
    assert (gaps > 0).mean() == 1.0
    assert np.median(gaps) >= 0.5 * T.CODEC_MARGIN


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(3)
    img = np.stack([(x * 2) % 256, (y * 3) % 256, (x + y) % 256], -1).astype(np.float32)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def test_every_photo_ends_with_a_whole_photo_still_labelled_with_its_mos():
    from vqametric.sampling import SamplingConfig, make_plan
    from vqametric.sampling.reference import preprocess_reference
    from vqametric.train.fast.fusion_rows import WHOLE, image_rows, whole_image_row
    from vqametric.io.frames import RGBFrames

    sampling = SamplingConfig(num_segments=1, frames_per_segment=4, fragment_grid=2, fragment_patch=16, global_size=32)
    photo = _photo()
    rows = image_rows(photo, 3.7, sampling, seed=5)
    last = rows[-1]
    assert (last.role, last.ladder, last.rank, last.cls, last.target) == ("static", WHOLE, 0, 0, pytest.approx(3.7))
    assert sum(r.ladder == WHOLE for r in rows) == 1
    # the whole photo, unmoved: its frames are identical and its global view is the photo's
    assert all(torch.equal(last.fragments[0], last.fragments[k]) for k in range(1, 4))
    plan = make_plan(1, *photo.shape[:2], sampling)
    views = preprocess_reference(RGBFrames(torch.from_numpy(photo[None])), plan)
    torch.testing.assert_close(last.global_view[0], views["global_view"][0])
    # the row is a function of (photo, mos, seed) drawn apart from the others
    again = whole_image_row(photo, 3.7, sampling, seed=5)
    assert torch.equal(again.fragments, last.fragments)
