"""Training manifests (CSV / JSON Lines): parsing, path resolution and typed errors."""
import json
import math

import pytest

from vqametric.errors import VQAMetricError
from vqametric.train import manifest as M


@pytest.fixture
def videos(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"\x00")
    return tmp_path


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_dimensions_and_rationale(videos):
    m = write(videos / "train.csv",
              "path,mos,Motion Quality,motion_amplitude,Aesthetic Quality,content_quality,clarity_quality,"
              "rationale,source\n"
              "a.mp4,4.25,4,3,5,4,4,\"Sharp, steady; a little dull.\",lsvq\n"
              "b.mp4,1.5,,,,,,,konvid\n"
              "\n")
    recs = M.load_manifest(m)
    assert len(recs) == 2
    a, b = recs
    assert a.path == str(videos / "a.mp4") and a.mos == 4.25 and a.line == 2
    assert a.dimensions == {"motion_quality": 4.0, "motion_amplitude": 3.0, "aesthetic_quality": 5.0,
                            "content_quality": 4.0, "clarity_quality": 4.0}
    assert a.rationale == "Sharp, steady; a little dull." and a.extra == {"source": "lsvq"}
    assert b.dimensions == {} and b.rationale is None
    vec = b.dimension_vector()
    assert len(vec) == 5 and all(math.isnan(v) for v in vec)
    labels = M.dimension_labels(recs)
    assert labels.shape == (2, 5) and labels[0].tolist() == [4, 3, 5, 4, 4]


def test_jsonl_and_base_dir(videos, tmp_path_factory):
    other = tmp_path_factory.mktemp("lists")
    m = write(other / "train.jsonl",
              json.dumps({"path": "a.mp4", "mos": 3, "rationale": "ok", "clarity_quality": 2.5}) + "\n\n" +
              json.dumps({"path": str(videos / "b.mp4"), "mos": 2.0, "motion_quality": None}) + "\n")
    recs = M.load_manifest(m, base_dir=videos)
    assert [r.path for r in recs] == [str(videos / "a.mp4"), str(videos / "b.mp4")]
    assert recs[0].dimensions == {"clarity_quality": 2.5} and recs[0].line == 1
    assert recs[1].line == 3 and recs[1].dimensions == {}
    # relative to the manifest's own folder by default: a.mp4 is not there
    with pytest.raises(M.ManifestFileNotFound, match="line 1.*a.mp4"):
        M.load_manifest(m)
    assert len(M.load_manifest(m, check_files=False)) == 2


@pytest.mark.parametrize("body,error,match", [
    ("path,score\na.mp4,3\n", M.ManifestFormatError, r"lacks column\(s\) \['mos'\]"),
    ("path,mos\na.mp4,\n", M.ManifestValueError, r"line 2, column 'mos': missing value"),
    ("path,mos\na.mp4,good\n", M.ManifestValueError, r"line 2, column 'mos': expected a number"),
    ("path,mos\na.mp4,73\n", M.ManifestValueError, r"73 is outside \[1, 5\]; rescale"),
    ("path,mos\na.mp4,nan\n", M.ManifestValueError, r"not a finite number"),
    ("path,mos,clarity_quality\na.mp4,3,0.5\n", M.ManifestValueError, r"column 'clarity_quality'.*outside"),
    ("path,mos\na.mp4,3\nb.mp4,2\na.mp4,4\n", M.ManifestValueError, r"line 4.*already listed on line 2"),
    ("path,mos\na.mp4,3,extra\n", M.ManifestFormatError, r"more cells than header"),
    ("path,mos,MOS\na.mp4,3,3\n", M.ManifestFormatError, r"duplicate column"),
    ("path,mos\n", M.ManifestFormatError, r"no rows"),
    ("", M.ManifestFormatError, r"empty CSV"),
    ("path,mos\nmissing.mp4,3\n", M.ManifestFileNotFound, r"line 2.*missing.mp4.*does not exist"),
])
def test_csv_errors(videos, body, error, match):
    m = write(videos / "bad.csv", body)
    with pytest.raises(error, match=match):
        M.load_manifest(m)


@pytest.mark.parametrize("lines,error,match", [
    (['{"path": "a.mp4", "mos": "3"}'], M.ManifestValueError, r"line 1, column 'mos': expected a number"),
    (['{"path": "a.mp4", "mos": true}'], M.ManifestValueError, r"expected a number, got True"),
    (['{"path": "a.mp4", "mos": 3}', '{"path": "b.mp4" "mos": 3}'], M.ManifestFormatError, r"line 2: invalid JSON"),
    (['[1, 2]'], M.ManifestFormatError, r"must be a JSON object, got list"),
    (['{"path": "", "mos": 3}'], M.ManifestValueError, r"column 'path': expected a non-empty string"),
    (['{"path": 5, "mos": 3}'], M.ManifestValueError, r"column 'path': expected a non-empty string"),
    (['{"mos": 3}'], M.ManifestValueError, r"column 'path': missing value"),
    (['{"path": "a.mp4", "mos": 3, "rationale": 7}'], M.ManifestValueError, r"column 'rationale': expected text"),
    (['{"path": "a.mp4", "mos": 3, "Clarity Quality": 4, "clarity_quality": 4}'], M.ManifestFormatError,
     r"same column given twice"),
])
def test_jsonl_errors(videos, lines, error, match):
    m = write(videos / "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(error, match=match):
        M.load_manifest(m)


def test_requirements_ranges_and_formats(videos):
    m = write(videos / "t.csv", "path,mos,rationale\na.mp4,3,\n")
    with pytest.raises(M.ManifestValueError, match="column 'motion_quality': missing rating"):
        M.load_manifest(m, require_dimensions=True)
    with pytest.raises(M.ManifestValueError, match="missing rationale"):
        M.load_manifest(m, require_rationale=True)
    # another score scale on request
    m100 = write(videos / "t100.csv", "path,mos\na.mp4,73\n")
    assert M.load_manifest(m100, score_range=(0, 100))[0].mos == 73
    # the extension decides the format unless it is given
    txt = write(videos / "list.txt", "path,mos\na.mp4,3\n")
    with pytest.raises(M.ManifestFormatError, match="unknown manifest extension"):
        M.load_manifest(txt)
    assert M.load_manifest(txt, format="csv")[0].mos == 3
    with pytest.raises(M.ManifestFileNotFound):
        M.load_manifest(videos / "nope.csv")
    # duplicates on request
    dup = write(videos / "dup.csv", "path,mos\na.mp4,3\na.mp4,4\n")
    assert len(M.load_manifest(dup, allow_duplicates=True)) == 2
    bad = videos / "latin.csv"
    bad.write_bytes("path,mos\nä.mp4,3\n".encode("latin-1"))
    with pytest.raises(M.ManifestFormatError, match="not UTF-8"):
        M.load_manifest(bad, check_files=False)


def test_error_hierarchy():
    assert issubclass(M.ManifestFormatError, (M.ManifestError, ValueError, VQAMetricError))
    assert issubclass(M.ManifestValueError, (M.ManifestError, ValueError))
    assert issubclass(M.ManifestFileNotFound, (M.ManifestError, FileNotFoundError))
