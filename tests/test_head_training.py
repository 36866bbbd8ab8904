"""Smoke test of the head recipe: a few steps on generated images, export, evaluation, scoring."""
import json
import os

import numpy as np
import pytest

from media import moving_frames, write_image


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for i in range(8):
        write_image(str(d / f"img{i}.png"), moving_frames(1, 160, 176, seed=i)[0])
    return d


def test_biq2021_reader_and_split(tmp_path):
    from vqametric.train.fast.data import DataNotFound, read_biq2021_train, split_train_val

    with pytest.raises(DataNotFound, match="git clone https://github.com/nisarahmedrana/BIQ2021"):
        read_biq2021_train(tmp_path / "missing")
    (tmp_path / "Images").mkdir()
    rows = ["Image Name,MOS,,"] + [f"ss0{1 + i % 3} ({i}).jpg,{i / 20:.2f},," for i in range(20)]
    (tmp_path / "Train (Images and MOS).csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataNotFound, match="20 image"):
        read_biq2021_train(tmp_path)
    items = read_biq2021_train(tmp_path, check_images=False)
    assert len(items) == 20 and items[3].mos == pytest.approx(1 + 4 * 0.15)
    train, val = split_train_val(items, 0.1, seed=0)
    assert len(val) == 2 and len(train) == 18
    assert not {v.name for v in val} & {t.name for t in train}
    assert split_train_val(items[::-1], 0.1, seed=0)[1] == val           # independent of file order
    assert split_train_val(items, 0.1, seed=1)[1] != val


def test_group_views_match_the_inference_preprocessing(image_folder):
    import torch
    from dataclasses import replace

    from vqametric.backends import FastHead, HeadConfig
    from vqametric.io.frames import RGBFrames
    from vqametric.sampling import make_plan, preprocess_reference
    from vqametric.train.fast import distortions as D
    from vqametric.train.fast.data import load_image, make_group

    head = FastHead(HeadConfig(width=4))
    sampling = head.sampling_config()
    img = load_image(image_folder / "img0.png")
    g = make_group(img, 3.3, sampling, seed=5, kind="spatial", distortion="blur")
    k = sampling.frames_per_segment
    assert g.fragments.shape == (3, k, 3, 224, 224) and g.global_view.shape == (3, k, 3, 128, 128)
    assert g.attribution[0] == 0 and g.levels[0] == 0 and g.levels[1] < g.levels[2]
    # row 0 equals the planned segment of the pristine clip, preprocessed as inference does
    rng = np.random.default_rng(5)
    motion = "zoom" if rng.random() < 0.25 else "pan"
    clip = D.make_clip_from_image(img, 16, motion, seed=int(rng.integers(2 ** 31)))
    plan = make_plan(*clip.shape[:3], replace(sampling, seed=int(rng.integers(2 ** 31))))
    seg = int(rng.integers(plan.num_segments))
    idx = list(plan.frame_indices[k * seg:k * (seg + 1)])
    ref = preprocess_reference(RGBFrames(torch.from_numpy(clip[idx])), plan)
    torch.testing.assert_close(g.fragments[0], ref["fragments"])
    torch.testing.assert_close(g.global_view[0], ref["global_view"])
    t = make_group(img, 3.3, sampling, seed=6, kind="temporal", distortion="shuffle")
    from vqametric.backends.head import ATTRIBUTION_CLASSES
    assert t.fragments.shape[0] == 2 and t.attribution == [0, ATTRIBUTION_CLASSES.index("stutter")]


def test_image_groups_add_opinion_rows_only(image_folder):
    from vqametric.backends import FastHead, HeadConfig
    from vqametric.train.fast.data import GroupBatches, items_from_images, load_image, make_group

    sampling = FastHead(HeadConfig(width=4)).sampling_config()
    img = load_image(image_folder / "img1.png")
    g = make_group(img, 2.5, sampling, seed=3, kind="image")
    full = make_group(img, 2.5, sampling, seed=3, kind="spatial", distortion="noise")
    assert g.fragments.shape[0] == 1 and g.attribution == [0] and g.severity.shape == (1, 9)
    assert (g.fragments[0] == full.fragments[0]).all()       # the same pristine segment as a full group
    items = items_from_images(image_folder, {f"img{i}.png": 1.0 + i / 2 for i in range(8)})
    data = GroupBatches(items, sampling, steps=2, groups_per_batch=2, seed=0, image_groups=3, p_temporal=0.5)
    b = data.batch(1)
    assert len(b.pristine_rows) == 5 and len(set(b.mos.tolist())) == 5  # five different images
    # the last three rows are the image groups: no ladder or temporal pair points at them
    tail = set(range(b.fragments.shape[0] - 3, b.fragments.shape[0]))
    assert tail <= set(b.pristine_rows.tolist())
    pairs = set(b.ordered_pairs.flatten().tolist()) | set(b.temporal_pairs.flatten().tolist())
    assert not pairs & tail and len(b.ordered_pairs) + len(b.temporal_pairs) > 0
    again = data.batch(1)                                   # batch i depends only on (seed, i)
    assert (again.fragments == b.fragments).all() and again.distortions == b.distortions


def test_temporal_ladder_groups_rank_two_levels(image_folder):
    import torch

    from vqametric.backends import FastHead, HeadConfig
    from vqametric.backends.head import ATTRIBUTION_CLASSES
    from vqametric.train.fast.data import collate, load_image, make_group

    sampling = FastHead(HeadConfig(width=4)).sampling_config()
    img = load_image(image_folder / "img2.png")
    g = make_group(img, 3.0, sampling, seed=9, kind="temporal", distortion="stutter", temporal_levels=2)
    assert g.fragments.shape[0] == 3 and g.levels[0] == 0 and 1 <= g.levels[1] < g.levels[2] <= 5
    assert g.attribution == [0] + 2 * [ATTRIBUTION_CLASSES.index("stutter")]
    sev = g.severity[:, 6].tolist()                                    # "stutter" column: level / 5
    assert sev == pytest.approx([0.0, g.levels[1] / 5, g.levels[2] / 5])
    # the perturbed rows differ from the original: each level's perturbation is visible
    assert not torch.equal(g.global_view[1], g.global_view[0]) and not torch.equal(g.global_view[2], g.global_view[0])
    one = make_group(img, 3.0, sampling, seed=9, kind="temporal", distortion="stutter", temporal_levels=1)
    assert one.fragments.shape[0] == 2
    flick = make_group(img, 3.0, sampling, seed=4, kind="temporal", distortion="flicker", temporal_levels=2)
    shuf = make_group(img, 3.0, sampling, seed=4, kind="temporal", distortion="shuffle", temporal_levels=2)
    assert flick.fragments.shape[0] == 3 and shuf.fragments.shape[0] == 2     # no levels: one perturbed row
    b = collate([g, shuf, flick])
    assert b.pristine_rows.tolist() == [0, 3, 5]
    assert b.temporal_pairs.tolist() == [[0, 1], [0, 2], [3, 4], [5, 6], [5, 7]]
    assert b.ordered_pairs.tolist() == [[1, 2], [6, 7]]          # milder level above the worse one


def test_resampled_groups_have_grid_free_sources(image_folder):
    """``p_resample`` shrinks the image of a share of ladder groups, from its own random stream:
    ``p_resample=0`` gives the groups of the plain recipe bit for bit, image-only groups are
    shrunk only by their own ``p_resample_images``, and about that share of the others are, by a
    factor in RESAMPLE_RANGE."""
    import torch

    from vqametric.backends import FastHead, HeadConfig
    from vqametric.train.fast import distortions as D
    from vqametric.train.fast.data import RESAMPLE_RANGE, load_image, make_group

    sampling = FastHead(HeadConfig(width=4)).sampling_config()
    img = load_image(image_folder / "img3.png")
    shrunk = 0
    for seed in range(12):
        plain = make_group(img, 3.0, sampling, seed, kind="spatial", distortion="blur")
        zero = make_group(img, 3.0, sampling, seed, kind="spatial", distortion="blur", p_resample=0.0)
        assert torch.equal(plain.fragments, zero.fragments) and "resampled" not in zero.info
        half = make_group(img, 3.0, sampling, seed, kind="spatial", distortion="blur", p_resample=0.5)
        if "resampled" in half.info:
            shrunk += 1
            f = half.info["resampled"]
            assert RESAMPLE_RANGE[0] <= f <= RESAMPLE_RANGE[1]
            # the same group as one made from the image shrunk by hand
            by_hand = make_group(D.downsample_image(img, f), 3.0, sampling, seed, kind="spatial", distortion="blur")
            assert torch.equal(half.fragments, by_hand.fragments)
        else:
            assert torch.equal(half.fragments, plain.fragments)
        assert "resampled" not in make_group(img, 3.0, sampling, seed, kind="image", p_resample=1.0).info
        assert "resampled" not in make_group(img, 3.0, sampling, seed, kind="spatial", distortion="blur",
                                             p_resample_images=1.0).info
        alone = make_group(img, 3.0, sampling, seed, kind="image", p_resample_images=1.0)
        f = alone.info["resampled"]
        assert torch.equal(alone.fragments, make_group(D.downsample_image(img, f), 3.0, sampling, seed,
                                                       kind="image").fragments)
    assert 2 <= shrunk <= 10


def test_spatial_weights_option(capsys):
    from vqametric.train.fast.head_trainer import initial_head, parse_args

    parse = lambda *a: parse_args(["--data", "d", "--out", "o", *a])  # noqa: E731
    assert parse("--spatial-weights", "exposure=1, colour=0.5").spatial_weights == {"exposure": 1.0, "colour": 0.5}
    assert parse("--spatial-weights", "").spatial_weights == {}
    assert parse().spatial_weights == {"exposure": 1.0, "colour": 1.0}           # the default, parsed
    for bad in ("sharpness=1", "colour", "colour=x", "colour=-1", "colour=nan"):
        with pytest.raises(SystemExit):
            parse("--spatial-weights", bad)
        assert "--spatial-weights" in capsys.readouterr().err
    defaults = parse()
    assert (defaults.spatial_stride, defaults.arch, defaults.width) == (None, None, None)   # HeadConfig's, or --init's
    initial_head(defaults)
    assert (defaults.spatial_stride, defaults.arch, defaults.width) == (2, 3, 24)
    assert parse("--spatial-stride", "4").spatial_stride == 4
    for option in ("--spatial-stride", "--width"):      # both HeadConfig sizes, refused before any data is read
        for bad in ("0", "-1", "two"):
            with pytest.raises(SystemExit):
                parse(option, bad)
            assert option in capsys.readouterr().err
    assert parse().p_resample == 0.0 and parse("--p-resample", "0.5").p_resample == 0.5
    assert parse().p_resample_images == 0.0 and parse("--p-resample-images", "1").p_resample_images == 1.0
    for option in ("--p-resample", "--p-resample-images"):
        for bad in ("-0.1", "1.5", "half"):
            with pytest.raises(SystemExit):
                parse(option, bad)
            assert option in capsys.readouterr().err
    assert parse("--arch", "4").arch == 4 and parse("--arch", "5").arch == 5
    with pytest.raises(SystemExit):
        parse("--arch", "1")
    assert "--arch" in capsys.readouterr().err


def test_trainer_smoke(image_folder, tmp_path):
    from vqametric.train.fast.head_trainer import main

    out = tmp_path / "run"
    rc = main(["--data", str(image_folder), "--items-from-folder", "--out", str(out), "--steps", "2", "--groups", "2",
               "--width", "4", "--workers", "0", "--threads", "1", "--val-fraction", "0.5", "--val-every", "0",
               "--eval-quality", "0", "--eval-ladder", "1", "--ladders", "blur,stutter,x264,colour", "--eval-temporal", "2",
               "--log-every", "1", "--spatial-stride", "4", "--p-resample", "0.5", "--eval-ladder-resampled", "1"])
    assert rc == 0
    for name in ("head.onnx", "head.safetensors", "metrics.json", "train_log.jsonl"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "vqametric-fast" and m["split"] == {"train": 4, "validation": 4, "seed": 0, "fraction": 0.5}
    ladders = m["validation"]["ladders"]
    assert set(ladders["per_ladder"]) == {"blur", "stutter", "x264", "colour"}
    modes = ladders["colour_modes"]                 # each colour mode forced on the image
    assert set(modes) == {"desaturate", "saturate", "tint"}
    rows = np.asarray([modes[m]["mean_score_by_level"] for m in sorted(modes)])
    assert rows.shape == (3, 6) and np.allclose(rows[:, 0], rows[0, 0])     # the same pristine clip
    assert len({tuple(r) for r in rows[:, 1:].round(6)}) == 3                  # three different ladders
    for per in ladders["per_ladder"].values():      # one image: the mean by level is its own scores
        by_level = np.asarray(per["mean_score_by_level"])
        assert by_level.shape == (6,) and ((by_level >= 1) & (by_level <= 5)).all()
        assert per["strictly_decreasing"] == float((np.diff(by_level) < 0).all())
    agreement = ladders["vmaf_agreement"]["x264"]       # VMAF falls along the CRF ladder
    assert agreement["pairs"] == 5 and agreement["vmaf_mean_by_level"] == sorted(agreement["vmaf_mean_by_level"],
                                                                                    reverse=True)
    grid_free = m["validation"]["ladders_resampled"]        # the spatial ladders again, from a shrunk image
    assert grid_free["resample"] == 0.7 and set(grid_free["per_ladder"]) == {"blur", "x264", "colour"}
    assert grid_free["per_ladder"]["blur"]["mean_score_by_level"][0] != ladders["per_ladder"]["blur"]["mean_score_by_level"][0]
    assert m["config"]["p_resample"] == 0.5
    scene = m["validation"]["scene"]               # the ladders on the generated scene, no JPEG history
    assert set(scene["per_ladder"]) == {"blur", "stutter", "x264", "colour"} and scene["pairs"] == 20
    for name, per in scene["per_ladder"].items():
        assert len(per["scores"]) == 6 and per["scores"][0] == scene["pristine"]
        worse = [lv for lv in range(1, 6) if per["scores"][lv] >= scene["pristine"]]
        assert worse == [lv for n, lv in scene["not_below_pristine"] if n == name]
    assert set(m["validation"]["temporal"]["per_perturbation"]) == {"shuffle", "local_shuffle", "reverse", "jitter",
                                                                     "duplicate", "black"}
    assert "DATA" in m["command"] and str(image_folder) not in m["command"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["total"]) for r in log)

    import vqametric
    from vqametric.backends.head import read_head_metadata

    meta = read_head_metadata(str(out / "head.onnx"))
    assert meta["name"] == "vqametric-fast" and meta["sampling"]["frames_per_segment"] == 4
    assert meta["head"]["spatial_stride"] == 4 and meta["head"]["width"] == 4
    res = vqametric.score(moving_frames(12, 96, 128), model=str(out / "head.onnx"))
    assert 1.0 <= res.score <= 5.0
    assert os.path.getsize(out / "head.onnx") < 20 * 2 ** 20


def test_training_is_repeatable_bit_for_bit(image_folder, tmp_path, monkeypatch):
    """Two runs of the recipe with the same seed write the same weights, byte for byte, whether the
    batches are made in the training process or in a worker process (batch ``i`` depends only on
    ``(seed, i)``); another seed writes different ones."""
    from vqametric.train.fast import head_trainer

    monkeypatch.setattr(head_trainer, "finish", lambda *a, **k: {})     # evaluation and export are tested above
    monkeypatch.setattr(head_trainer, "export_onnx", lambda *a, **k: None)
    files = {}
    for name, workers, seed in (("a", "0", "0"), ("b", "1", "0"), ("c", "0", "1")):
        argv = ["--data", str(image_folder), "--items-from-folder", "--out", str(tmp_path / name), "--steps", "2",
                "--groups", "2", "--image-groups", "1", "--width", "4", "--workers", workers, "--threads", "1",
                "--val-fraction", "0.5", "--val-every", "0", "--seed", seed]
        head_trainer.train(head_trainer.parse_args(argv))
        files[name] = (tmp_path / name / "head.safetensors").read_bytes()
    assert files["a"] == files["b"]
    assert files["a"] != files["c"]


def test_quality_report_per_subset(image_folder):
    """BIQ2021 names start with their subset: the report gives SRCC, MOS and prediction means per subset."""
    import torch

    from vqametric.train.fast.data import ImageItem
    from vqametric.train.fast.evaluate import evaluate_quality

    class Brightness:       # a stand-in scorer: 1 + 4 * mean brightness of each clip
        def score(self, clips):
            return torch.tensor([1 + 4 * float(np.mean(c)) / 255 for c in clips]), None

    paths = sorted(image_folder.glob("*.png"))
    items = [ImageItem(f"ss0{1 + i // 20} ({i}).jpg", str(paths[i % len(paths)]), 1.0 + (i % 20) / 5, 0.0)
             for i in range(40)]
    rep = evaluate_quality(Brightness(), items)
    assert set(rep["by_subset"]) == {"ss01", "ss02"}
    for name, sub in rep["by_subset"].items():
        ix = range(0, 20) if name == "ss01" else range(20, 40)
        mos = np.array([items[i].mos for i in ix])
        assert sub["n"] == 20 and sub["mos_mean"] == pytest.approx(mos.mean())
        assert sub["mos_std"] == pytest.approx(mos.std())
        assert 1.0 <= sub["pred_mean"] <= 5.0
    # equal-sized subsets: the overall mean prediction is the mean of theirs
    means = [sub["pred_mean"] for sub in rep["by_subset"].values()]
    assert rep["pred_mean"] == pytest.approx(np.mean(means), rel=1e-5)


def test_quality_report_subset_offsets_removed(image_folder):
    """MOS 1.0 + k / 5 in ss01 and 1.1 + k / 5 in ss02 (k = 0..19, interleaved, no ties); predictions
    equal the MOS in ss01 and the MOS + 10 in ss02. Pooled, every ss02 clip outranks every ss01
    clip: prediction ranks k + 1 and k + 21, MOS ranks 2k + 1 and 2k + 2; with d = k - 9.5 the rank
    covariance sum is sum (d - 10)(2d - 0.5) + (d + 10)(2d + 0.5) = 4 * 665 + 200 = 2860 and both
    rank variance sums are 5330 (ranks 1..40), so SRCC = 2860 / 5330. With each subset's offset
    removed the predictions equal the MOS: SRCC 1."""
    import torch

    from vqametric.train.fast.data import ImageItem
    from vqametric.train.fast.evaluate import evaluate_quality

    mos = [1.0 + k / 5 for k in range(20)] + [1.1 + k / 5 for k in range(20)]
    queue = [m + (10.0 if i >= 20 else 0.0) for i, m in enumerate(mos)]

    class Fixed:             # returns the queued predictions in order, whatever the clips
        def score(self, clips):
            out = [queue.pop(0) for _ in clips]
            return torch.tensor(out, dtype=torch.float64), None

    paths = sorted(image_folder.glob("*.png"))
    items = [ImageItem(f"ss0{1 + i // 20} ({i}).jpg", str(paths[i % len(paths)]), mos[i], 0.0) for i in range(40)]
    rep = evaluate_quality(Fixed(), items)
    assert not queue
    assert rep["srcc"] == pytest.approx(2860 / 5330)
    assert rep["srcc_subset_offsets_removed"] == pytest.approx(1.0)
    assert rep["by_subset"]["ss02"]["pred_mean"] - rep["by_subset"]["ss01"]["pred_mean"] == pytest.approx(10.1)   # 10 + the MOS step
    # names that are not subsets (every first word its own group of one): no subsets, no diagnostic
    queue[:] = [m + (10.0 if i >= 20 else 0.0) for i, m in enumerate(mos)]
    rep = evaluate_quality(Fixed(), [ImageItem(f"img{i}.jpg", it.path, it.mos, 0.0) for i, it in enumerate(items)])
    assert not queue and rep["by_subset"] == {} and "srcc_subset_offsets_removed" not in rep
    assert rep["srcc"] == pytest.approx(2860 / 5330)


def test_init_fine_tunes_an_existing_head(image_folder, tmp_path, monkeypatch):
    """``--init`` starts from a head file (its architecture, its weights); no steps leave the
    weights as loaded, two steps move them; a contradicting architecture option, an ONNX file and
    an unknown name are refused with errors that name the fix."""
    import torch
    from safetensors.torch import load_file

    from vqametric.errors import ModelNotFound, WeightsNotFound
    from vqametric.train.fast import head_trainer

    monkeypatch.setattr(head_trainer, "finish", lambda *a, **k: {})
    monkeypatch.setattr(head_trainer, "export_onnx", lambda *a, **k: None)

    def run(name, *extra):
        argv = ["--data", str(image_folder), "--items-from-folder", "--out", str(tmp_path / name), "--groups", "1",
                "--image-groups", "1", "--workers", "0", "--threads", "1", "--val-fraction", "0.5",
                "--val-every", "0", *extra]
        cfg = head_trainer.parse_args(argv)
        head_trainer.train(cfg)
        return cfg, load_file(str(tmp_path / name / "head.safetensors"))

    cfg, base = run("base", "--steps", "2", "--width", "4", "--spatial-stride", "4", "--arch", "5")
    assert (cfg.width, cfg.spatial_stride, cfg.arch) == (4, 4, 5)
    init = str(tmp_path / "base" / "head.safetensors")
    cfg, same = run("same", "--steps", "0", "--init", init)
    assert (cfg.width, cfg.spatial_stride, cfg.arch) == (4, 4, 5)        # taken from the file
    assert cfg.init_model.startswith("vqametric-fast ")
    assert same.keys() == base.keys() and all(torch.equal(same[k], base[k]) for k in base)
    cfg, moved = run("moved", "--steps", "2", "--init", init, "--width", "4", "--lr", "5e-4")   # agreeing option
    assert any(not torch.equal(moved[k], base[k]) for k in base if k.endswith("weight"))

    with pytest.raises(ValueError, match=r"--width 8 \(it has 4\).*leave --width out"):
        run("clash", "--steps", "0", "--init", init, "--width", "8")
    assert not (tmp_path / "clash").exists()        # refused before anything was written
    (tmp_path / "base" / "head.onnx").write_bytes(b"")
    with pytest.raises(WeightsNotFound, match=r"cannot be trained further; pass .*head\.safetensors instead"):
        run("onnx", "--init", str(tmp_path / "base" / "head.onnx"))
    with pytest.raises(ModelNotFound, match="vqametric-fast"):
        run("name", "--init", "vqametric-fsat")


def test_load_trainable_head_by_model_name():
    """A registered compact model's name resolves to its shipped torch weights; a reasoning
    model's name and the architecture-6 default are refused."""
    import torch

    import vqametric
    from vqametric.backends.head import load_head, load_trainable_head, read_head_metadata
    from vqametric.errors import WeightsNotFound
    from vqametric.registry import get_card

    path = get_card("vqametric-fast-0.5").weights_path("torch")
    head, meta = load_trainable_head("vqametric-fast-0.5")
    ref, _ = load_head(path)
    assert meta == read_head_metadata(path) and head.config == ref.config
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), ref.state_dict().values()))
    reasoning = [n for n in vqametric.list_models() if get_card(n).backend != "fast-head"]
    assert reasoning        # the registry lists the reasoning models (their weights need not be installed)
    with pytest.raises(WeightsNotFound, match="not a fast head"):
        load_trainable_head(reasoning[0])
    # the default model (architecture 6) has its own recipe for its readouts
    with pytest.raises(WeightsNotFound, match="fusion_trainer"):
        load_trainable_head("vqametric-fast")
