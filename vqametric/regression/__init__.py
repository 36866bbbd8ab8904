"""Encoder regression testing: golden scores (baselines), comparisons with tolerances, reports.

>>> from vqametric.regression import compare_records, load_records
>>> report = compare_records(load_records("baseline.json"), load_records("new.json"))  # doctest: +SKIP
>>> report.exit_code                                                                   # doctest: +SKIP
0
"""
from .baseline import (SCHEMA_VERSION, clip_record, file_sha256, load_records, make_baseline, model_identity,
                       score_clips, write_json)
from .compare import (DEFAULT_MAX_DROP, DEFAULT_MAX_SEGMENT_DROP, ClipDelta, Report, Tolerances, check_model,
                      compare_clip, compare_records)
from .report import render_text, to_dict, to_json, to_junit

__all__ = [
    "SCHEMA_VERSION", "clip_record", "file_sha256", "load_records", "make_baseline", "model_identity", "score_clips",
    "write_json", "DEFAULT_MAX_DROP", "DEFAULT_MAX_SEGMENT_DROP", "ClipDelta", "Report", "Tolerances", "check_model",
    "compare_clip", "compare_records", "render_text", "to_dict", "to_json", "to_junit",
]
