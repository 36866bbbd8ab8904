"""The package stays readable: no module in vqametric/ is longer than 500 lines."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "vqametric"
MAX_LINES = 500


def test_no_module_is_longer_than_500_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules longer than {MAX_LINES} lines (split them by what they do): {long}"
