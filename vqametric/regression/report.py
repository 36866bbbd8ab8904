"""A comparison :class:`~vqametric.regression.compare.Report` as text, JSON and JUnit XML."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from typing import Any

from ..tabular import format_table
from .compare import Report

REPORT_KIND = "vqametric-regression-report"
REPORT_SCHEMA_VERSION = 1


def _signed(x: float | None) -> str:
    """``x`` to 4 decimals with its sign; a difference that rounds to zero prints as ``+0.0000``."""
    return "" if x is None else f"{round(x, 4) + 0.0:+.4f}"


def render_text(report: Report, title: str) -> str:
    """Lines for a terminal: tolerances, one row per clip, the unmatched clips, the aggregate."""
    t = report.tolerances
    unit = " of the golden score" if t.relative else ""
    fmt = (lambda x: f"{100 * x:g}%") if t.relative else (lambda x: f"{x:g}")  # noqa: E731
    lines = [f"{title}: {describe_model(report.model)}",
             f"tolerances: score drop <= {fmt(t.max_drop)}{unit}, segment drop <= {fmt(t.max_segment_drop)}{unit}"]
    rows = []
    for c in report.clips:
        seg = "" if c.worst_segment is None else f"{_signed(c.worst_segment_delta)} (#{c.worst_segment})"
        file = "" if c.file_changed is None else ("changed" if c.file_changed else "same")
        score = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
        rows.append([c.path, c.status.upper(), score(c.old_score), score(c.new_score), _signed(c.score_delta),
                     seg, file])
    if rows:
        lines.append(format_table(rows, ["clip", "status", "golden", "now", "delta", "worst segment", "file"]))
    for c in report.clips:
        lines.extend(f"  {c.path}: {r}" for r in c.reasons)
    for path in report.not_in_baseline:
        lines.append(f"not in the baseline: {path}")
    for path in report.not_given:
        lines.append(f"in the baseline but not given: {path}")
    a = report.aggregate()
    lines.append(f"{a['clips']} clip(s): {a['passed']} passed, {a['regressed']} regressed, {a['errors']} error(s); "
                 f"mean delta {_signed(a['mean_score_delta']) or 'n/a'}, lowest delta "
                 f"{_signed(a['min_score_delta']) or 'n/a'}, lowest segment delta "
                 f"{_signed(a['min_segment_delta']) or 'n/a'}")
    lines.append(report.status.upper())
    return "\n".join(lines) + "\n"


def describe_model(m: dict[str, Any]) -> str:
    if not m:
        return "no model recorded"
    w = m.get("weights_sha256")
    return " ".join(str(x) for x in (m.get("name"), m.get("version"), m.get("runtime")) if x) + \
        (f", weights sha256 {w[:12]}" if w else "")


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-able data with a fixed structure (``schema_version`` 1)."""
    return {"schema_version": REPORT_SCHEMA_VERSION, "kind": REPORT_KIND, "status": report.status,
            "exit_code": report.exit_code, "model": report.model, "tolerances": asdict(report.tolerances),
            "clips": [asdict(c) for c in report.clips], "not_in_baseline": list(report.not_in_baseline),
            "not_given": list(report.not_given), "aggregate": report.aggregate()}


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def to_junit(report: Report, suite: str = "vqametric") -> str:
    """JUnit XML: one ``testcase`` per clip (``failure`` for a regression, ``error`` for a clip that
    failed to score) and one ``error`` testcase per clip that could not be matched."""
    cases: list[ET.Element] = []
    for c in report.clips:
        case = ET.Element("testcase", classname=suite, name=c.path)
        if c.status != "pass":
            tag = "failure" if c.status == "regression" else "error"
            ET.SubElement(case, tag, message=c.reasons[0] if c.reasons else c.status).text = "\n".join(c.reasons)
        ET.SubElement(case, "system-out").text = json.dumps(asdict(c))
        cases.append(case)
    for kind, paths in (("not in the baseline", report.not_in_baseline),
                        ("in the baseline but not given", report.not_given)):
        for path in paths:
            case = ET.Element("testcase", classname=suite, name=path)
            ET.SubElement(case, "error", message=f"{path} is {kind}")
            cases.append(case)
    failures = sum(c.find("failure") is not None for c in cases)
    errors = sum(c.find("error") is not None for c in cases)
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)), failures=str(failures), errors=str(errors))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                       errors=str(errors), skipped="0")
    props = ET.SubElement(ts, "properties")
    for k, v in report.model.items():
        ET.SubElement(props, "property", name=f"model.{k}", value=str(v))
    for k, v in asdict(report.tolerances).items():
        ET.SubElement(props, "property", name=f"tolerance.{k}", value=str(v))
    ts.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
