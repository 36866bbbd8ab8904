"""``vqametric train head|fusion|grpo|aso --config FILE``: config validation and overrides, and short runs on a
tiny VLM."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from media import write_video
from test_lmm_tiny import build_qwen

from vqametric.backends import build_scorer
from vqametric.registry import get_card
from vqametric.sampling.plan import SamplingConfig
from vqametric.train import cli as C
from vqametric.train.config import TrainConfigError
from vqametric.train.reasoning.aso import ASOConfig
from vqametric.train.reasoning.config import load_config
from vqametric.train.reasoning.grpo import GRPOConfig
from vqametric.train.reasoning.rewards import RewardConfig

has_peft = importlib.util.find_spec("peft") is not None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny Qwen2.5-VL checkpoint, three tinted clips and a manifest with ratings."""
    d = tmp_path_factory.mktemp("train-cli")
    build_qwen(str(d / "ckpt"), "2.5")
    for i, level in enumerate((1, 3, 5)):
        mix = (level - 1) / 4
        frames = np.zeros((8, 40, 64, 3), np.uint8)
        frames[..., 0], frames[..., 1], frames[..., 2] = 200 * (1 - mix) + 20, 60, 200 * mix + 20
        write_video(d / f"v{i}.mp4", frames, fps=8)
    (d / "train.csv").write_text(
        "path,mos,motion_quality,motion_amplitude,aesthetic_quality,content_quality,clarity_quality,rationale\n"
        "v0.mp4,1.5,1,2,1,,2,Blurry and reddish.\n"
        "v1.mp4,3.0,3,3,3,3,3,\n"
        "v2.mp4,4.5,5,4,5,4,5,Sharp.\n")
    return d


BASE = """manifest = "train.csv"
output = "{output}"
steps = 2
batch_size = 2
learning_rate = 1e-3
[model]
checkpoint = "ckpt"
frames = 4
global_size = 56
"""


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# ----------------------------------------------------------------------------------------------
# the config
def test_defaults_are_the_release_seeds(workdir):
    cfg = load_config(write(workdir, "min.toml", BASE.format(output="out-min")), "grpo")
    g, r = cfg.grpo_config(), cfg.reward_config()
    assert (g.num_generations, g.temperature, g.beta, g.clip_epsilon, g.num_iterations) == (4, 1.0, 0.04, 0.2, 1)
    assert g == GRPOConfig(seed=0) and r == RewardConfig()
    assert r.sigma == 0.5 and r.temporal and cfg.grpo.max_new_tokens == 1024
    assert cfg.manifest == os.path.join(str(workdir), "train.csv")          # relative to the config's folder
    assert cfg.model.checkpoint == os.path.join(str(workdir), "ckpt")
    assert cfg.lora is None and cfg.save == "auto"
    a = load_config(write(workdir, "min-aso.toml", BASE.format(output="out-min")), "aso")
    assert a.aso_config() == ASOConfig() and a.aso.sft_steps == 0
    # the same config as JSON, with tables as objects and null for "off"
    raw = {"manifest": "train.csv", "output": "o", "steps": 2, "model": {"checkpoint": "ckpt"},
           "grpo": {"num_generations": 8, "max_grad_norm": None, "temporal": False},
           "rewards": {"weights": {"format": 0.5}}, "lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}}
    j = load_config(write(workdir, "c.json", json.dumps(raw)), "grpo")
    assert j.grpo_config().num_generations == 8 and j.grpo_config().max_grad_norm is None
    assert not j.reward_config().temporal and j.reward_config().weights == {"format": 0.5}
    assert j.lora_settings().target_modules == ("q_proj", "v_proj") and j.lora_settings().alpha == 32.0


BAD = [
    ("[grpo]\nbetta = 0.1\n", "grpo", "unknown key 'betta' (did you mean 'beta'?)"),
    ("[grpo]\nbeta = \"0.1\"\n", "grpo", "expected a number, got '0.1' (str); write it without quotes"),
    ("[grpo]\nnum_generations = 1\n", "grpo", "num_generations: 1 is below the minimum 2"),
    ("[grpo]\ntemperature = 0\n", "grpo", "temperature must be positive"),
    ("[grpo]\naggregation = \"tokens\"\n", "grpo",
     "'tokens' is not one of 'sequence', 'token' (did you mean 'token'?)"),
    ("[rewards]\nweights = { rank = 1 }\n", "grpo", "unknown name 'rank' (did you mean 'ranking'?)"),
    ("[aso]\nbeta = 0.1\n", "grpo", "the [aso] table belongs to `vqametric train aso`"),
    ("[grpo]\nbeta = 0.1\n", "aso", "the [grpo] table belongs to `vqametric train grpo`"),
    ("[aso]\nbeta = 0\n", "aso", "[aso] beta must be positive"),
    ("[lora]\nr = 0\n", "grpo", "[lora] r: 0 is below the minimum 1"),
    ("save = \"adapter\"\n", "grpo", "save = 'adapter' needs a [lora] table"),
    ("mode = \"aso\"\n", "grpo", "mode = 'aso' but the command is `vqametric train grpo`"),
    ("overwrite = \"yes\"\n", "grpo", "overwrite: expected true or false"),
    ("[rewardz]\nsigma = 1\n", "grpo", "unknown key 'rewardz' (did you mean 'rewards'?)"),
]


@pytest.mark.parametrize("extra,mode,message", BAD)
def test_config_errors_name_the_fix(workdir, extra, mode, message):
    text = BASE.format(output="o")
    if extra.startswith("["):
        text = text + extra
    else:
        text = extra + text
    path = write(workdir, "bad.toml", text)
    with pytest.raises(TrainConfigError) as e:
        load_config(path, mode)
    assert message in str(e.value) and "bad.toml" in str(e.value)


def test_missing_and_unreadable_configs(workdir):
    cases = [
        ("nomanifest.toml", BASE.replace('manifest = "train.csv"\n', "").format(output="o"),
         "missing required key 'manifest' (the training manifest (CSV or JSON Lines))"),
        ("nomodel.toml", 'manifest = "a.csv"\noutput = "o"\nsteps = 1\n', "missing table [model]"),
        ("nosteps.toml", BASE.replace("steps = 2\n", "").format(output="o"), "missing required key 'steps'"),
        ("broken.toml", "steps = = 2\n", "invalid TOML"),
        ("broken.json", "{\"steps\": }", "invalid JSON"),
        ("config.yaml", "steps: 2\n", "unknown config extension '.yaml'; use .toml or .json"),
        ("dtype.toml", BASE.format(output="o") + 'dtype = "fp8"\n', "[model] dtype: 'fp8' is not one of"),
    ]
    for name, text, message in cases:
        with pytest.raises(TrainConfigError) as e:
            load_config(write(workdir, name, text), "grpo")
        assert message in str(e.value), (name, str(e.value))
    with pytest.raises(TrainConfigError, match="does not exist"):
        load_config(os.path.join(str(workdir), "absent.toml"), "grpo")


def test_check_exit_codes_and_output_guard(workdir, capsys):
    cfg = write(workdir, "check.toml", BASE.format(output="out-check"))
    assert C.main(["grpo", "--config", cfg, "--check"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["videos"] == 3 and shown["grpo"]["num_generations"] == 4
    bad = write(workdir, "bad2.toml", BASE.format(output="o") + "[grpo]\nbetta = 1\n")
    assert C.main(["grpo", "--config", bad]) == 2
    assert "error:" in capsys.readouterr().err
    os.makedirs(os.path.join(str(workdir), "out-busy"), exist_ok=True)
    write(os.path.join(str(workdir), "out-busy"), "x.txt", "x")
    busy = write(workdir, "busy.toml", BASE.format(output="out-busy"))
    assert C.main(["grpo", "--config", busy, "--check"]) == 2
    assert "is not empty; choose a new folder or set overwrite = true" in capsys.readouterr().err
    # a manifest without dimension ratings cannot train ASO
    write(workdir, "plain.csv", "path,mos\nv0.mp4,2.0\n")
    plain = write(workdir, "plain.toml", BASE.replace("train.csv", "plain.csv").format(output="out-plain"))
    assert C.main(["aso", "--config", plain, "--check"]) == 2
    assert "no row has a dimension rating" in capsys.readouterr().err


def test_register_adds_the_train_command():
    parser = argparse.ArgumentParser(prog="vqametric")
    sub = parser.add_subparsers(dest="command", required=True)
    C.register(sub)
    args = parser.parse_args(["train", "aso", "--config", "run.toml", "--steps", "3"])
    assert args.train_mode == "aso" and args.config == "run.toml" and args.steps == 3 and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["train"])            # a mode is required


def test_set_overrides_are_typed_and_checked(workdir, capsys):
    path = write(workdir, "over.toml", BASE.format(output="o"))
    cfg = load_config(path, "grpo", [("--set", "grpo.beta", "0.1"), ("--set", "grpo.temporal", "false"),
                                     ("--set", "rewards.weights", "format=0.5,ranking=2"), ("--set", "steps", "7"),
                                     ("--set", "grpo.max_grad_norm", "0"), ("--set", "lora.r", "4")])
    assert cfg.grpo.beta == 0.1 and cfg.grpo.temporal is False and cfg.steps == 7
    assert cfg.rewards.weights == {"format": 0.5, "ranking": 2.0} and cfg.grpo_config().max_grad_norm is None
    assert cfg.lora.r == 4 and cfg.lora.alpha == 32.0                      # an override can open a table
    here = load_config(path, "grpo", [("--set", "output", "elsewhere")])
    assert here.output == os.path.abspath("elsewhere")                   # relative to the working folder
    bad = [("grpo.betta", "0.1", "unknown key 'grpo.betta' (did you mean 'grpo.beta'?)"),
           ("grpo.beta", "high", "--set grpo.beta: expected a number, got 'high'"),
           ("grpo.num_generations", "1", "--set grpo.num_generations: 1 is below the minimum 2"),
           ("grpo.temporal", "maybe", "expected true or false, got 'maybe'"),
           ("grpo.aggregation", "tokens", "'tokens' is not one of 'sequence', 'token' (did you mean 'token'?)"),
           ("model", "x", "[model] is a table; set one of its keys, e.g. model.checkpoint=VALUE"),
           ("steps.x", "1", "'steps' is a value, not a table"),
           ("aso.beta", "1", "unknown key 'aso'")]
    for key, text, message in bad:
        with pytest.raises(TrainConfigError) as e:
            load_config(path, "grpo", [("--set", key, text)])
        assert message in str(e.value), (key, str(e.value))
    # the same from the command line, with the shortcuts
    assert C.main(["grpo", "--config", path, "--check", "--set", "grpo.beta=0.5", "--steps", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["grpo"]["beta"] == 0.5 and shown["steps"] == 3 and "seed" not in shown["grpo"]
    assert C.main(["grpo", "--config", path, "--check", "--set", "grpo.beta"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert C.main(["grpo", "--config", path, "--check", "--steps", "0"]) == 2
    assert "--steps: 0 is below the minimum 1" in capsys.readouterr().err


def test_head_mode_help_and_config(workdir, capsys):
    with pytest.raises(SystemExit) as e:
        C.main(["head", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--spatial-stride" in out and "--no-vmaf" in out and "--set KEY=VALUE" in out
    write(workdir, "head.toml", 'data = "images"\nout = "runs/head"\nsteps = 5\nspatial_weights = { colour = 0.5 }\n')
    assert C.main(["head", "--config", os.path.join(str(workdir), "head.toml"), "--check", "--width", "8",
                   "--no-vmaf", "--set", "seed=3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"] == os.path.join(str(workdir), "images") and shown["steps"] == 5
    assert (shown["width"], shown["vmaf"], shown["seed"], shown["spatial_weights"]) == (8, False, 3, {"colour": 0.5})
    assert C.main(["head", "--check"]) == 2
    assert "missing required key 'data'" in capsys.readouterr().err
    assert C.main(["head", "--data", "d", "--out", "o", "--check", "--set", "stpes=3"]) == 2
    assert "unknown key 'stpes' (did you mean 'steps'?)" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# the default model's recipe
FUSION_DEFAULTS = {"base": "vqametric-fast-0.5", "workers": 2, "epochs": 20, "lr": 1e-3, "seed": 0, "limit": 0,
                   "val_limit": 0, "reuse_features": False, "version": "1.2.0", "eval_ladder": 24,
                   "eval_temporal": 100}     # the shipped readouts' recipe


def test_fusion_help_loads_no_torch():
    code = ("import sys\nfrom vqametric.train import cli\ntry:\n    cli.main(['fusion', '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--eval-ladder" in done.stdout and "--reuse-features" in done.stdout
    assert "docs/training-fusion.md" in done.stdout


def test_fusion_mode_config_options_and_overrides(tmp_path, capsys):
    from vqametric.train.fast.fusion_config import FusionTrainConfig, load_fusion_config

    cfg = load_fusion_config(None, [("--data", "data", "d"), ("--out", "out", "o")])
    assert cfg.recorded() == FUSION_DEFAULTS and list(cfg.recorded()) == list(FUSION_DEFAULTS)
    assert cfg == FusionTrainConfig(data=os.path.abspath("d"), out=os.path.abspath("o"))
    path = write(tmp_path, "fusion.toml", 'data = "biq"\nout = "runs/fusion"\nepochs = 5\nreuse_features = true\n')
    assert C.main(["fusion", "--config", path, "--check", "--lr", "2e-3", "--eval-ladder", "0",
                   "--set", "seed=3", "--set", "epochs=7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"] == os.path.join(str(tmp_path), "biq")             # relative to the config's folder
    assert shown["out"] == os.path.join(str(tmp_path), "runs", "fusion")
    assert (shown["epochs"], shown["lr"], shown["eval_ladder"], shown["seed"], shown["reuse_features"]) == \
        (7, 2e-3, 0, 3, True)                             # --set after the options, the options after the file
    assert "command" not in shown                            # not a key
    with pytest.raises(SystemExit):
        C.main(["fusion", "--data", "d", "--out", "o", "--epochs", "many"])    # argparse checks the type
    assert "--epochs: expected an integer, got 'many'" in capsys.readouterr().err


def test_fusion_mode_typed_errors(tmp_path, capsys):
    from vqametric.train.fast.fusion_config import load_fusion_config

    with pytest.raises(TrainConfigError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        load_fusion_config(None, [("--set", "data", "d"), ("--set", "out", "o"), ("--set", "epoch", "3")])
    bad = write(tmp_path, "bad-fusion.toml", 'data = "d"\nout = "o"\nvall_limit = 3\n')
    with pytest.raises(TrainConfigError, match="bad-fusion.toml: unknown key 'vall_limit'"):
        load_fusion_config(bad)
    assert C.main(["fusion", "--data", "d", "--out", "o", "--check", "--set", "workres=4"]) == 2
    assert "unknown key 'workres' (did you mean 'workers'?)" in capsys.readouterr().err
    assert C.main(["fusion", "--out", "o", "--check"]) == 2
    assert "missing required key 'data'" in capsys.readouterr().err
    assert C.main(["fusion", "--data", "d", "--out", "o", "--check", "--set", "workers=0"]) == 2
    assert "workers: 0 is below the minimum 1" in capsys.readouterr().err


def test_fusion_module_entry_point_is_an_alias(capsys):
    from vqametric.train.fast import fusion_trainer as F
    from vqametric.train.options import command_line

    argv = ["--data", "d", "--out", "o", "--epochs", "5", "--reuse-features"]
    cfg = F.parse_args(argv)
    assert cfg == F.load_fusion_config(None, C.overrides(C.build_parser().parse_args(["fusion", *argv])))
    assert cfg.epochs == 5 and cfg.reuse_features and cfg.command is None
    assert command_line(cfg, "vqametric train fusion", F.PLACEHOLDERS) == \
        "vqametric train fusion --data DATA --out OUT --epochs 5 --reuse-features"
    assert F.main([*argv, "--check"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 5
    assert F.main(["--out", "o"]) == 2                       # a config error: nothing is trained
    assert "missing required key 'data'" in capsys.readouterr().err
    assert C.MODES["fusion"][0] == F.__name__ and C._job("fusion") is F.JOB


# ----------------------------------------------------------------------------------------------
# short runs
def _logits(folder, clip):
    card = get_card("lmm-dimensions", sampling=SamplingConfig(num_segments=4, fragment_grid=0, fragment_patch=0,
                                                              global_size=56, interpolation="bicubic"))
    sc = build_scorer(card, device="cpu", checkpoint=folder, prompt="overall")
    prepared, _ = sc.prepare(clip)
    a = sc.adapter
    with torch.no_grad():
        return a.model(**a.batch_inputs([prepared], [a.prompt(prepared, sc.question)])).logits


def test_cli_grpo_run_writes_weights_config_and_log(workdir, one_thread, capsys):
    cfg = write(workdir, "grpo.toml", BASE.format(output="out-grpo") + "[grpo]\nmax_new_tokens = 8\n")
    assert C.main(["grpo", "--config", cfg, "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    out = os.path.join(str(workdir), "out-grpo")
    assert summary["output"] == out and summary["steps"] == 2
    assert {"train_config.json", "log.json", "model"} <= set(os.listdir(out))
    log = json.load(open(os.path.join(out, "log.json")))
    assert log["mode"] == "grpo" and [s["step"] for s in log["steps"]] == [1, 2]
    assert {"reward/total", "reward/ranking", "reward/regression", "reward/format", "reward/temporal", "kl", "loss",
            "seconds", "lr"} <= set(log["steps"][0])
    assert log["info"]["videos"] == 3 and log["summary"]["reward/total"]["window"] == 1
    saved = json.load(open(os.path.join(out, "train_config.json")))
    assert saved["grpo"]["beta"] == 0.04 and saved["resolved"]["family"] == "qwen2.5-vl"
    assert any(f.endswith(".safetensors") for f in os.listdir(os.path.join(out, "model")))
    clip = torch.full((8, 3, 40, 64), 90, dtype=torch.uint8)
    trained, original = _logits(os.path.join(out, "model"), clip), _logits(os.path.join(str(workdir), "ckpt"), clip)
    assert trained.shape == original.shape and not torch.allclose(trained, original, atol=1e-6)
    # the output folder is now taken
    assert C.main(["grpo", "--config", cfg, "--quiet"]) == 2


def test_cli_aso_run_with_a_supervised_stage(workdir, one_thread, capsys):
    lora = "[lora]\nr = 4\nalpha = 8\n" if has_peft else ""
    cfg = write(workdir, "aso.toml", BASE.format(output="out-aso") + lora + "[aso]\nsft_steps = 1\nbeta = 0.5\n")
    assert C.main(["aso", "--config", cfg, "--steps", "3"]) == 0
    captured = capsys.readouterr()
    assert "sft 1/1" in captured.err and "aso 3/3" in captured.err
    summary = json.loads(captured.out)
    out = os.path.join(str(workdir), "out-aso")
    log = json.load(open(os.path.join(out, "log.json")))
    assert [s["stage"] for s in log["steps"]] == ["sft", "aso", "aso", "aso"]
    assert {"aso/loss", "aso/mae", "aso/kl_policy_ref", "aso/kl_target_ref"} <= set(log["steps"][-1])
    assert summary["sft_steps"] == 1 and summary["steps"] == 3
    files = set(os.listdir(os.path.join(out, "adapter" if has_peft else "model")))
    assert ({"adapter_model.safetensors", "adapter_config.json"} if has_peft else {"config.json"}) <= files
