"""vqametric eval: a model's scores against a manifest's MOS."""
import json

import numpy as np
import pytest

from media import write_video

from vqametric import demo
from vqametric.cli import main
from vqametric.errors import VQAMetricError
from vqametric.eval import evaluate
from vqametric.train.fast.distortions import degrade


@pytest.fixture(scope="module")
def blur_ladder(tmp_path_factory):
    """The demo scene and its blur ladder (levels 1-5), MOS falling along the ladder."""
    d = tmp_path_factory.mktemp("eval")
    scene = np.stack(list(demo.scene_frames(12, 360, 640)))
    lines = ["path,mos"]
    for level, mos in zip(range(0, 6), (4.8, 4.3, 3.6, 2.9, 2.0, 1.3)):
        frames = scene if level == 0 else degrade(scene, "blur", level, seed=0)
        write_video(d / f"blur{level}.mp4", frames, fps=12, options={"crf": "16"})
        lines.append(f"blur{level}.mp4,{mos}")
    (d / "ladder.csv").write_text("\n".join(lines) + "\n")
    return d


def test_the_default_model_follows_a_blur_ladder(blur_ladder):
    import vqametric
    report = vqametric.eval.evaluate("vqametric-fast", blur_ladder / "ladder.csv")
    assert report["scored"] == 6 and report["failures"] == []
    assert report["srcc"] > 0.8, report["scores"]
    scores = [s["score"] for s in report["scores"]]
    assert scores[0] > scores[-1]


def test_failures_are_listed_not_scored(blur_ladder, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_text("not a video")
    rows = [f"{blur_ladder}/blur{i}.mp4,{m}" for i, m in ((0, 4.8), (2, 3.6), (5, 1.3))]
    (tmp_path / "m.csv").write_text("path,mos\n" + "\n".join(rows) + f"\n{tmp_path}/broken.mp4,3.0\n")
    assert main(["eval", str(tmp_path / "m.csv"), "-q", "-o", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scored"] == 3 and report["failures"][0]["error"].startswith("VideoDecodeError")
    assert "SRCC" in capsys.readouterr().out
    (tmp_path / "few.csv").write_text("path,mos\n" + rows[0] + "\n")
    with pytest.raises(VQAMetricError, match="at least 3"):
        evaluate("vqametric-fast", tmp_path / "few.csv")
