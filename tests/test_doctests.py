"""The docstring examples of the public API run as doctests against the shipped default model.

Each docstring is one test, so a failure names the function. Examples that need a reasoning
model's checkpoint or a GPU are marked ``+SKIP`` in the docstring itself, with the reason.
"""
import doctest
import importlib

import pytest

MODULES = ["vqametric.functional", "vqametric.metric", "vqametric.result", "vqametric.explanation",
           "vqametric.registry", "vqametric.tabular"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doctests():
    for name in MODULES:
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(_doctests()))
def test_docstring_examples(test, one_thread):
    if any(".plot(" in ex.source for ex in test.examples):
        pytest.importorskip("matplotlib")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=True)
    assert runner.failures == 0, "".join(report)


def test_every_public_function_has_an_example():
    import vqametric

    names = ["score", "score_batch", "explain", "list_models", "create_metric", "VQAThinkerMetric"]
    for name in names:
        obj = getattr(vqametric, name)
        assert ">>>" in (obj.__doc__ or ""), f"vqametric.{name} has no docstring example"
        for section in ("Args:", "Returns:", "Raises:") if name != "VQAThinkerMetric" else ("Args:", "Raises:"):
            assert section in obj.__doc__, f"vqametric.{name} has no {section} section"
    for method in ("update", "compute", "forward", "results", "plot"):
        doc = getattr(vqametric.VQAThinkerMetric, method).__doc__ or ""
        assert ">>>" in doc, f"VQAThinkerMetric.{method} has no docstring example"
