"""The package stays readable: no module in vqametric/ is longer than 500 lines, and every import
made inside a function says why it is there (an optional extra, a heavy dependency, or laziness
that keeps light commands light) in a comment on its line or the line above."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "vqametric"
MAX_LINES = 500


def test_no_module_is_longer_than_500_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules longer than {MAX_LINES} lines (split them by what they do): {long}"


def test_imports_inside_functions_say_why():
    bare = []
    for p in sorted(ROOT.rglob("*.py")):
        lines = p.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    line, above = lines[node.lineno - 1], lines[node.lineno - 2] if node.lineno > 1 else ""
                    if "#" not in line and not above.strip().startswith("#"):
                        bare.append(f"{p.relative_to(ROOT.parent)}:{node.lineno}: {line.strip()}")
    assert not bare, ("imports inside functions without a comment saying why (optional: ..., heavy: ..., "
                      "lazy: ...); or move them to the top of the module: " + "; ".join(sorted(set(bare))))
