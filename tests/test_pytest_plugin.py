"""The pytest plugin: assert_quality, the vqametric_quality fixture and --vqametric-update-baseline."""
import json
from importlib.metadata import entry_points

import pytest

from media import moving_frames, write_video
from vqametric.pytest_plugin import assert_quality

pytest_plugins = ["pytester"]

TEST_FILE = """
def test_clip(vqametric_quality):
    vqametric_quality({clip!r}, min_score={min_score}, baseline="golden/clip.json", name="clip.mp4")
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One source at CRF 24 and at CRF 30."""
    root = tmp_path_factory.mktemp("plugin")
    frames = moving_frames(50, 64, 96)
    return {crf: write_video(root / f"crf{crf}.mp4", frames, fps=25, options={"crf": str(crf)}) for crf in (24, 30)}


def _run(pytester, clip, *args, min_score=1.0):
    pytester.makepyfile(test_enc=TEST_FILE.format(clip=clip, min_score=min_score))
    # other plugins off: pytester drops the modules a run imports, so they would be imported again each time
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist",
                                        "-p", "no:anyio", *args)


def test_snapshot_cycle(pytester, clips, one_thread):
    r = _run(pytester, clips[24])
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*no golden score for clip.mp4*the file does not exist*--vqametric-update-baseline*"])

    _run(pytester, clips[24], "--vqametric-update-baseline").assert_outcomes(passed=1)
    golden = pytester.path / "golden" / "clip.json"
    doc = json.loads(golden.read_text())
    assert doc["kind"] == "vqametric-baseline" and [c["path"] for c in doc["clips"]] == ["clip.mp4"]

    _run(pytester, clips[24]).assert_outcomes(passed=1)
    r = _run(pytester, clips[30])
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*clip.mp4 regressed against*score fell*"])
    r = _run(pytester, clips[24], min_score=4.5)
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*quality 1.* is below min_score 4.5*"])

    doc["clips"][0]["model"]["weights_sha256"] = "0" * 64
    golden.write_text(json.dumps(doc))
    r = _run(pytester, clips[24])
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*weights_sha256 differs*rewrite it*"])
    _run(pytester, clips[30], "--vqametric-update-baseline").assert_outcomes(passed=1)
    _run(pytester, clips[30]).assert_outcomes(passed=1)


def test_entry_point_registers_the_plugin(pytester, clips):
    assert "vqametric.pytest_plugin" in {e.value for e in entry_points(group="pytest11")}
    # the inner runs get the fixture from the entry point alone: disabled by its name, it is gone
    r = _run(pytester, clips[24], "-p", "no:vqametric")
    r.assert_outcomes(errors=1)
    r.stdout.fnmatch_lines(["*fixture 'vqametric_quality' not found*"])


def test_assert_quality_api(clips, tmp_path, one_thread):
    golden = tmp_path / "g.json"
    result = assert_quality(clips[24], baseline=golden, update=True)
    assert 1 <= result.score <= 5
    with pytest.raises(AssertionError, match="score fell"):
        assert_quality(clips[30], baseline=golden)  # another path: the file's only record
    assert_quality(clips[30], baseline=golden, max_drop=0.5, max_segment_drop=1.0)
    assert_quality(clips[30], baseline=golden, name="b", update=True)  # a name is matched exactly: added
    assert [c["path"] for c in json.loads(golden.read_text())["clips"]] == [clips[24], "b"]
    with pytest.raises(AssertionError, match="no golden score for c .* holds 2 clips"):
        assert_quality(clips[30], baseline=golden, name="c")
    with pytest.raises(ValueError, match="needs name="):
        assert_quality(moving_frames(8, 64, 96), baseline=golden)
