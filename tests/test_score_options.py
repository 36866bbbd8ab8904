"""Options of ``vqametric.score`` beyond the video: sampling overrides, and decode warnings kept in the result."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from media import moving_frames, truncated_copy, write_video

import vqametric
from vqametric import SamplingError

CLIP = torch.from_numpy(moving_frames(30, 48, 64)).permute(0, 3, 1, 2).contiguous()


def test_sampling_override_sets_the_number_of_segments():
    default = vqametric.score(CLIP)
    six = vqametric.score(CLIP, sampling={"num_segments": 6})
    assert len(default.timeline) == 4 and len(six.timeline) == 6
    assert six.sampling["frames_per_segment"] == default.sampling["frames_per_segment"]
    assert vqametric.score(CLIP).score == default.score  # the override did not leak into the cached default


def test_sampling_that_does_not_fit_the_model_is_a_typed_error():
    with pytest.raises(SamplingError, match="the head expects"):
        vqametric.score(CLIP, sampling={"frames_per_segment": 2})
    with pytest.raises(SamplingError, match="unknown sampling option"):
        vqametric.score(CLIP, sampling={"segmentz": 3})


def test_a_truncated_file_scores_with_its_warning_in_the_result(tmp_path):
    path = write_video(tmp_path / "a.mp4", moving_frames(50, 48, 64), fps=25,
                       container_options={"movflags": "faststart"})
    cut = truncated_copy(path, tmp_path / "cut.mp4", 0.5)
    with warnings.catch_warnings(record=True) as issued:
        warnings.simplefilter("always")
        result = vqametric.score(cut)
    assert len(result.warnings) == 1 and "is truncated" in result.warnings[0]
    assert [str(w.message) for w in issued] == result.warnings  # still issued as a RuntimeWarning
    assert json.loads(result.to_json())["warnings"] == result.warnings
    assert "warning" in str(result)
    assert vqametric.score(path).warnings == []
