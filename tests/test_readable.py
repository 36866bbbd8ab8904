"""Results people can read: ``str``, notebook HTML, plots, and explanations without a reasoning model."""
from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

import vqametric
from vqametric.errors import BackendUnavailable, VQAMetricError, WeightsNotFound
from vqametric.explanation import LABEL, describe, severity_word
from vqametric.registry import DEFAULT_MODEL, get_card
from vqametric.result import QualityResult, SegmentScore

from media import moving_frames, write_video

QUIET = {"blur": 0.05, "noise": 0.01, "compression": 0.1, "black": 0.02, "freeze": 0.01}

SHIPPED = get_card(DEFAULT_MODEL).version        # the shipped default model's version


def made(scores, distortions=None, frozen=(), attribution=None, dominant="none", score=None, **kw) -> QualityResult:
    """A fast-model result with one-second segments scoring ``scores``."""
    distortions = distortions or ["none"] * len(scores)
    timeline = [SegmentScore(25 * i, 25 * (i + 1), float(i), float(i + 1), s, d, i in frozen)
                for i, (s, d) in enumerate(zip(scores, distortions))]
    return QualityResult(score=float(np.mean(scores)) if score is None else score, model="vqametric-fast",
                         model_version="1.0.0", source="clip.mp4", timeline=timeline,
                         attribution=dict(QUIET if attribution is None else attribution), dominant_distortion=dominant,
                         **kw)


def black_second() -> QualityResult:
    d = ["compression"] * 10
    d[4] = "black"
    return made([3.5] * 4 + [1.2] + [3.5] * 5, d, attribution={**QUIET, "compression": 0.25, "black": 0.7},
                dominant="black", score=3.27)


def blur_stretch() -> QualityResult:
    scores = [3.6, 3.6, 3.7, 1.9, 1.6, 2.0, 3.6, 3.5, 3.6]
    d = ["compression"] * 3 + ["blur"] * 3 + ["compression"] * 3
    return made(scores, d, frozen={8}, attribution={**QUIET, "blur": 0.45, "compression": 0.3}, dominant="blur",
                score=2.9)


def clean() -> QualityResult:
    return made([4.2, 4.1, 4.3, 4.2], attribution=QUIET, dominant="none", score=4.2)


def parse_failure() -> QualityResult:
    return QualityResult(score=float("nan"), model="vqathinker-8b", model_version="1.0", parse_ok=False,
                         raw_answer="I am not sure", sampling={"generation": {"failure": "no <answer> tag"}})


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two 2 s clips (96 x 128, 25 fps): a moving scene, and the same with its second second black."""
    d = tmp_path_factory.mktemp("readable")
    frames = moving_frames(50, 96, 128)
    black = frames.copy()
    black[25:] = 0
    return str(write_video(d / "moving.mp4", frames)), str(write_video(d / "black.mp4", black))


@pytest.fixture(scope="module")
def metric(clips):
    m = vqametric.VQAThinkerMetric()
    m.update(list(clips))
    return m


# ------------------------------------------------------------------------------------------------
# str / repr / HTML


def test_str_of_hand_built_results():
    text = str(black_second())
    assert text.split("\n") == [
        "vqametric-fast 1.0.0: 3.27 / 5  clip.mp4",
        "  worst segment  4.0-5.0 s, score 1.20 (black)",
        "  dominant       black (severity 0.70, strong)",
    ]
    assert "frozen         8.0-9.0 s" in str(blur_stretch())
    assert "dominant       none" in str(clean()) and "worst segment  1.0-2.0 s, score 4.10" in str(clean())
    warned = clean()
    warned.warnings = ["the clip is shorter than one segment"]     # a field others may add
    assert str(warned).endswith("warning        the clip is shorter than one segment")
    failed = str(parse_failure())
    assert failed.startswith("vqathinker-8b 1.0: no score") and "no <answer> tag" in failed
    dims = QualityResult(3.0, "lmm-dimensions", "1.0", dimensions={"Clarity Quality": 3.0}, text="Sharp.\nFine.")
    assert "dimensions  Clarity Quality 3" in str(dims) and "reasoning   Sharp." in str(dims)
    r = black_second()
    assert repr(r).startswith("QualityResult(score=3.27, model='vqametric-fast'")
    assert "timeline=[SegmentScore(" in repr(r)


def test_str_of_a_real_score(clips, metric):
    moving, black = metric.results()
    assert str(moving).startswith(f"vqametric-fast {SHIPPED}: ") and moving.source in str(moving).split("\n")[0]
    lines = str(black).split("\n")
    worst = black.worst_segment()
    assert worst.start_time >= 1.0 - 1e-6                             # the black second scores lowest
    assert any(ln.startswith("  worst segment  ") and f"score {worst.score:.2f}" in ln for ln in lines)
    assert any(ln.startswith("  dominant       ") for ln in lines)
    assert describe(black).startswith(f"Quality {black.score:.1f} / 5 (vqametric-fast {SHIPPED}).")


def test_repr_html_escapes_every_text():
    r = made([3.0, 1.0], ["none", "<b>bad</b>"], attribution={"<i>x</i>": 0.9}, dominant="<i>x</i>")
    r.source = '<script>alert("x")</script>.mp4'
    page = r._repr_html_()
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.mp4" in page and "&lt;b&gt;bad&lt;/b&gt;" in page
    assert page.count("<tr>") == 2 and page.count("<title>") == 2          # one bar (with tooltip) per segment
    assert "<svg" not in parse_failure()._repr_html_()                     # no timeline, no picture


# ------------------------------------------------------------------------------------------------
# plots


def test_result_plot_draws_segments_and_severities():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    r = blur_stretch()
    fig, axes = r.plot()
    timeline, attribution = axes
    (bars,) = timeline.containers
    assert len(bars) == len(r.timeline) and len(attribution.containers[0]) == len(r.attribution)
    worst = [b.get_facecolor() for b in bars][4]
    assert sum(b.get_facecolor() == worst for b in bars) == 1                # only the worst segment stands out
    assert [b.get_hatch() for b in bars].count("//") == 1                    # the frozen one
    assert timeline.get_ylim() == (1.0, 5.0) and timeline.get_xlim() == (0.0, 9.0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:4] == b"\x89PNG"
    ax = Figure().subplots()
    fig2, axes2 = r.plot(ax=ax)
    assert fig2 is ax.figure and axes2 == (ax,) and len(ax.containers[0]) == len(r.timeline)
    _, (t, a) = parse_failure().plot()                                        # no score, no timeline: no error
    assert not t.containers and not a.containers


def test_metric_plot_follows_torchmetrics(metric):
    pytest.importorskip("matplotlib")
    fig, ax = metric.plot()
    (line,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]        # one point per video
    assert np.allclose(line.get_ydata(), [r.score for r in metric.results()], atol=1e-5)
    assert ax.get_ylim()[0] < 1.0 and ax.get_ylim()[1] > 5.0 and ax.get_xlabel() == "video"
    fig, ax = metric.plot(metric.compute())
    assert fig is ax.figure
    empty = vqametric.VQAThinkerMetric()
    with pytest.raises(VQAMetricError, match="before any successful update"):
        empty.plot()


def test_plots_without_matplotlib(monkeypatch, metric):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(BackendUnavailable, match=re.escape("pip install 'vqametric[plot]'")):
        black_second().plot()
    with pytest.raises(BackendUnavailable, match=re.escape("vqametric[plot]")):
        metric.plot()
    assert "<svg" in black_second()._repr_html_()                            # the notebook view needs no matplotlib


# ------------------------------------------------------------------------------------------------
# describe


def test_drop_threshold_is_poolings():
    from vqametric import explanation
    from vqametric.backends.pooling import DEFECT_DROP

    assert explanation.DROP == DEFECT_DROP     # explanation.py keeps its own copy so it does not load torch


def test_describe_a_black_second():
    assert describe(black_second()) == (
        "Quality 3.3 / 5 (vqametric-fast 1.0.0). Quality drops at 4.0-5.0 s (segment score 1.2 against a median "
        "of 3.5): most likely black (strong). Across the clip: compression (mild). Most likely distortion: black. "
        + LABEL)


def test_describe_a_blur_stretch_and_a_freeze():
    assert describe(blur_stretch()) == (
        "Quality 2.9 / 5 (vqametric-fast 1.0.0). Quality drops at 3.0-6.0 s (segment scores down to 1.6 against a "
        "median of 3.6): most likely blur (moderate). Across the clip: compression (mild). Most likely distortion: "
        "blur. Frozen: 8.0-9.0 s. " + LABEL)


def test_describe_a_clean_clip_and_what_it_cannot_say():
    assert describe(clean()) == (
        "Quality 4.2 / 5 (vqametric-fast 1.0.0). No segment scores 0.5 or more below the median (segment scores "
        "4.1-4.3). No distortion reaches mild severity. The model names no dominant distortion. " + LABEL)
    two = describe(made([3.5, 2.0, 2.1, 3.6, 3.5, 3.4, 1.5, 3.5], ["none", "noise", "noise"] + ["none"] * 5))
    assert "drops at 1.0-3.0 s (segment scores down to 2.0" in two and "also drops at 6.0-7.0 s" in two
    assert "6.0-7.0 s (segment score 1.5 against a median of 3.5): no distortion named." in two
    assert describe(parse_failure()) == "No score (vqathinker-8b 1.0): the model's answer could not be parsed."
    assert "no timeline or attribution" in describe(QualityResult(3.0, "vqathinker-8b", "1.0", text="Fine."))
    assert [severity_word(v) for v in (0.0, 0.19, 0.2, 0.4, 0.6, 1.0)] == \
        ["none", "none", "mild", "moderate", "strong", "strong"]


# ------------------------------------------------------------------------------------------------
# vqametric explain


def explain_options() -> set[str]:
    from vqametric.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {o for a in sub.choices["explain"]._actions for o in a.option_strings}


def test_cli_explain_fast(clips, capsys):
    from vqametric.cli import main

    moving, black = clips
    assert main(["explain", moving, black, "--fast"]) == 0
    out = capsys.readouterr().out
    assert out.count("explanation:\n    Quality ") == 2 and f"(vqametric-fast {SHIPPED}, fast model)" in out
    assert " ".join(out.split()).count(LABEL) == 2
    assert main(["explain", moving, "--fast", "--model", "vqathinker-8b"]) == 2
    assert main(["explain", moving, "--model", "vqametric-fast"]) == 2
    assert "--fast" in capsys.readouterr().err


def test_cli_explain_without_a_reasoning_checkpoint(clips, capsys, monkeypatch):
    from vqametric.backends.lmm import weights
    from vqametric.cli import main

    def not_cached(repo_id, local_only):
        raise WeightsNotFound(f"could not get {repo_id!r} in the local Hub cache")

    monkeypatch.setattr(weights, "_hub_snapshot", not_cached)
    moving, _ = clips
    assert main(["explain", moving, "--format", "json"]) == 0
    captured = capsys.readouterr()
    note = captured.err.strip()
    assert "\n" not in note and note.startswith("note: no checkpoint of the reasoning model 'vqathinker-8b'")
    assert "--checkpoint DIR" in note and "GPU" in note and "16 GB" in note
    assert set(re.findall(r"--[a-z][a-z0-9-]*", note)) <= explain_options()
    (rec,) = __import__("json").loads(captured.out)
    assert rec["model"] == "vqametric-fast" and rec["explanation"].endswith(LABEL)
    assert main(["explain", moving, "--checkpoint", "owner/name"]) == 1     # a named checkpoint is never replaced
    assert "error:" in capsys.readouterr().err

    from vqametric import backends

    def unusable(card, device=None, **options):
        raise WeightsNotFound("the tokenizer of DIR has no end-of-turn token")

    monkeypatch.setattr(weights, "_hub_snapshot", lambda repo_id, local_only: "DIR")   # cached, but broken
    monkeypatch.setattr(backends, "build_scorer", unusable)
    assert main(["explain", moving]) == 1
    err = capsys.readouterr().err
    assert "end-of-turn" in err and "note:" not in err


def test_cli_messages_name_cli_options(clips, capsys, monkeypatch):
    from vqametric import backends
    from vqametric.backends.lmm.memory import ModelTooLarge
    from vqametric.cli import main

    messages = ["model 'vqathinker-8b' expects a vqathinker checkpoint but DIR holds a qwen2.5-vl model; pass the "
                "right checkpoint, or runtime='auto'",
                "the weights of 'x' are not on this machine. Pass checkpoint='owner/name' to download them, or "
                "checkpoint=PATH for a local copy",
                "Use a GPU with more memory, dtype=torch.bfloat16, load_in_8bit=True (needs bitsandbytes), a smaller "
                "batch_size, or fewer frames (sampling={'num_segments': ...}); lower num_samples or max_new_tokens"]
    for message in messages:
        def refuse(card, device=None, **options):
            raise (ModelTooLarge if "GPU" in message else WeightsNotFound)(message)

        monkeypatch.setattr(backends, "build_scorer", refuse)
        assert main(["explain", clips[0], "--checkpoint", "DIR"]) == 1
        err = capsys.readouterr().err
        assert not re.search(r"\b[a-z_0-9]+=", err), err                 # no keyword-argument syntax left
        assert set(re.findall(r"--[a-z][a-z0-9-]*", err)) <= explain_options(), err
    assert main(["explain", clips[0], "--checkpoint", "DIR", "--runtime", "auto"]) == 1   # the option exists
