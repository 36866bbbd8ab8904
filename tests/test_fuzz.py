"""Fuzzed input (CI size): every mutated file and every Hypothesis tensor input must score (a finite
score in [1, 5]) or raise a ``VQAMetricError``; no other exception, hang or crash.

Runs the code of ``benchmarks/fuzz_inputs.py`` (the long, rerunnable version) on a fixed seed with
60 mutated files and 150 tensor inputs, in worker subprocesses with a 60 s timeout per input.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("hypothesis")

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "fuzz_inputs.py")
_spec = importlib.util.spec_from_file_location("fuzz_inputs", _PATH)
fuzz_inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_inputs)

SEED = 0


def explain(rep: dict) -> str:
    lines = [f"{rep['counts']}"]
    for g in rep["failure_groups"]:
        lines.append(f"{g['count']} x {g['outcome']} {g['error']} at {g['where'] or '?'}: "
                     f"{str(g['example']['message'])[:300]}\n    input: {str(g['example']['input'])[:400]}"
                     f"\n    replay: python benchmarks/fuzz_inputs.py --replay {g['example']['saved']}")
    return "\n".join(lines)


def run(tmp_path, **sizes) -> dict:
    rep = fuzz_inputs.fuzz(seed=SEED, workdir=str(tmp_path), workers=2, timeout=60.0, max_side=64, **sizes)
    counts = rep["counts"]["file" if sizes["files"] else "tensor"]
    assert sum(counts.values()) == (sizes["files"] or sizes["tensors"])
    assert counts["harness_error"] == 0, explain(rep)
    return rep


def test_mutated_files_score_or_raise_typed_errors(tmp_path):
    rep = run(tmp_path, files=60, tensors=0)
    assert rep["counts"]["file"]["typed"] > 0  # the mutations do break files
    assert not rep["failures"], explain(rep)


def test_tensor_inputs_score_or_raise_typed_errors(tmp_path):
    rep = run(tmp_path, files=0, tensors=150)
    c = rep["counts"]["tensor"]
    assert c["ok"] > 20 and c["typed"] > 20  # well-formed inputs reach the model, bad ones are refused
    assert not rep["failures"], explain(rep)


def test_harness_counts_raw_errors_hangs_and_crashes(tmp_path):
    """A raw exception, a hang and a hard crash in a worker are counted, and the worker restarts."""
    cases = [{"kind": "probe", "action": a} for a in ("raise", "hang", "crash", "score")]
    results = fuzz_inputs.run_cases(cases, str(tmp_path), workers=1, timeout=3.0)
    assert [r["outcome"] for r in results] == ["raw", "timeout", "crash", "ok"]
    assert results[0]["calls"]["score"]["error"] == "KeyError"
    assert "SIGABRT" in results[2]["crash"]
