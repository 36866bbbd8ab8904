"""Every example in README.md and docs/*.md runs, and prints what the page shows.

One test per page. The rules (docs/index.md, "How the examples are checked", says the same):

* A page's examples run in order, in a fresh temporary working directory (examples may write
  files there), with ``$VQAMETRIC_MODELS`` pointing to an empty folder of its own,
  ``TRITON_INTERPRET`` / ``VQAMETRIC_FORCE_REFERENCE`` unset and the model registry holding the
  built-in cards only (it is restored afterwards). The blocks of a page share one Python
  namespace.
* ```python blocks are executed. A block whose first line starts with ``>>>`` is a doctest: it
  runs through the ``doctest`` module and every printed result must match. A plain block must
  run without an error; when it is followed (only blank lines between) by a ```text or ```output
  block, its standard output must match that block.
* A python block whose first line is a comment naming a file, ``# NAME.py`` or
  ``# NAME.py: what it does``, is also written to NAME.py in the working directory, so that shell
  commands of the page can run it.
* ```console blocks: each line that starts with ``$ `` is a command (a trailing ``\\`` continues
  it on the next line); the lines up to the next command are what it prints. ```bash (``sh``,
  ``shell``) blocks: every line is a command, and a ```text / ```output block right after the
  block is what the commands print together. A command must exit with status 0, unless it ends
  with the comment ``# exit status N``. Output is stdout and stderr together, as a terminal shows
  it.
* Only commands that start with ``vqametric `` or ``python `` run. ``vqametric`` commands without
  shell syntax (pipes, redirections, ``;``, ``&&``, variables) run in the test process through
  ``vqametric.cli.main``, the function behind the installed ``vqametric`` script, with the
  registry of a fresh process (this saves a Python start per command); ``*`` patterns are
  expanded as the shell would. Every other command runs with bash, ``python`` being this
  interpreter.
* Expected output is compared with doctest's rules and the options ELLIPSIS and
  NORMALIZE_WHITESPACE: ``...`` matches any text (timings, absolute paths), and runs of
  whitespace compare equal.
* A block that must not run carries ``<!-- skip: REASON -->`` as the last non-blank line before
  its fence; a marker without a reason fails the test. Nothing is skipped silently: a shell
  block with a command that cannot run here (``pip``, ``git``, downloads, ...) fails the test
  unless it is marked. Blocks of other languages (toml, csv, plain ``` fences) are not examples
  and are not run; a ```text block that does not follow an example is not checked either.
"""
from __future__ import annotations

import contextlib
import doctest
import glob
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))

# pages whose examples are known not to match the code yet: page -> reason
KNOWN_FAILURES: dict[str, str] = {
}

PYTHON = ("python", "py", "python3")
SHELL = ("bash", "sh", "shell")
CONSOLE = ("console", "shell-session")
OUTPUT = ("text", "output")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
RUNNABLE = ("vqametric", "python")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w.+-]*)")
SKIP = re.compile(r"^\s*<!--\s*skip\b(?P<rest>.*?)-->\s*$")
SCRIPT = re.compile(r"^#\s*(?P<name>[\w.-]+\.py)\s*(:.*)?$")
EXIT = re.compile(r"#\s*exit status\s+(?P<code>\d+)\s*$")


@dataclass
class Block:
    lang: str
    code: str
    line: int                      # line of the first code line, 1-based
    skip: str | None = None        # the marker's text after "skip"
    output: "Block | None" = None  # a ```text block right after this one


@dataclass
class Command:
    text: str
    line: int
    expected: str | None = None
    status: int = 0
    lines: list[str] = field(default_factory=list)


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks of a markdown page, with their skip markers and following output blocks."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    end_of_previous = -10
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group("indent")), m.group("fence"), m.group("lang").lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = SKIP.match(lines[k]) if k >= 0 else None
        block = Block(lang, textwrap.dedent(body) + "\n", i + 2, marker.group("rest") if marker else None)
        follows = k == end_of_previous and blocks and blocks[-1].lang in PYTHON + SHELL
        if lang in OUTPUT and follows and not marker:
            blocks[-1].output = block
        else:
            blocks.append(block)
        end_of_previous = j
        i = j + 1
    return blocks


def skip_reason(block: Block) -> str | None:
    if block.skip is None:
        return None
    reason = block.skip.strip().lstrip(":").strip()
    if not reason:
        raise AssertionError(f"the block whose fence is on line {block.line - 1}: a skip marker needs a reason: "
                             "<!-- skip: REASON -->")
    return reason


def check(want: str, got: str, where: str) -> None:
    checker = doctest.OutputChecker()
    want = want if want.endswith("\n") else want + "\n"
    if not checker.check_output(want, got, FLAGS):
        example = doctest.Example("", want)
        raise AssertionError(f"{where}: output differs\n" + checker.output_difference(example, got, FLAGS))


# ----------------------------------------------------------------------------------------------
# python blocks


def run_python(block: Block, ns: dict, page: str) -> None:
    first = block.code.lstrip().split("\n", 1)[0]
    m = SCRIPT.match(first)
    if m:
        with open(m.group("name"), "w", encoding="utf-8") as f:
            f.write(block.code)
    if first.startswith(">>>"):
        if block.output is not None:
            raise AssertionError(f"{page}:{block.line}: a doctest block carries its own output; drop the text block")
        test = doctest.DocTestParser().get_doctest(block.code, ns, f"{page}:{block.line}", os.path.join(ROOT, page),
                                                   block.line - 1)
        test.globs = ns  # share the page's namespace, not a copy
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        runner.run(test, out=report.append, clear_globs=False)
        if runner.failures:
            raise AssertionError("".join(report))
        return
    # line numbers of tracebacks are the page's
    code = compile("\n" * (block.line - 1) + block.code, os.path.join(ROOT, page), "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, ns)
    if block.output is not None:
        check(block.output.code, out.getvalue(), f"{page}:{block.line}")


# ----------------------------------------------------------------------------------------------
# shell blocks


def commands(block: Block) -> list[Command]:
    """The commands of a console or shell block, with their expected output (console blocks)."""
    cmds: list[Command] = []
    lines = block.code.rstrip("\n").split("\n")
    console = block.lang in CONSOLE
    i = 0
    while i < len(lines):
        ln = lines[i]
        if console and not ln.startswith("$ "):
            if not cmds:
                raise AssertionError(f"line {block.line + i}: a console block starts with a `$ ` command")
            cmds[-1].lines.append(ln)
            i += 1
            continue
        if not console and (not ln.strip() or ln.lstrip().startswith("#")):
            i += 1
            continue
        start = i
        text = ln[2:] if console else ln
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        cmds.append(Command(text.strip(), block.line + start))
        i += 1
    for c in cmds:
        m = EXIT.search(c.text)
        if m:
            c.status = int(m.group("code"))
        if console:
            c.expected = "\n".join(c.lines).strip("\n")
    return cmds


def fresh_registry_state() -> dict:
    from vqametric import registry

    return {"_CARDS": dict(registry._CARDS), "_USER_SCANNED": dict(registry._USER_SCANNED),
            "_USER_NAMES": set(registry._USER_NAMES)}


def set_registry_state(state: dict) -> None:
    from vqametric import registry

    for name, value in state.items():
        current = getattr(registry, name)
        current.clear()
        current.update(value)


# the built-in cards, read when the tests are collected (before any test can register more)
_PRISTINE: dict = fresh_registry_state()


def has_shell_syntax(text: str) -> bool:
    if "$" in text or "`" in text:
        return True
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    return any(tok and set(tok) <= set("();<>|&") for tok in lexer)


def run_in_process(text: str) -> tuple[int, str]:
    """``vqametric ARGS`` through vqametric.cli.main, with the registry of a fresh process."""
    from vqametric import cli

    argv = []
    for tok in shlex.split(text, comments=True)[1:]:
        matches = sorted(glob.glob(tok)) if any(ch in tok for ch in "*?[") else []
        argv.extend(matches or [tok])
    page_state = fresh_registry_state()
    set_registry_state(_PRISTINE)
    out = io.StringIO()
    saved_argv = sys.argv
    try:
        sys.argv = ["vqametric"] + argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = cli.main(argv)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved_argv
        set_registry_state(page_state)
    return status, out.getvalue()


def run_with_bash(text: str) -> tuple[int, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(["bash", "-c", text], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout


def run_shell(block: Block, page: str) -> None:
    cmds = commands(block)
    for c in cmds:
        if not c.text.startswith(tuple(word + " " for word in RUNNABLE)):
            raise AssertionError(f"{page}:{c.line}: `{c.text}` cannot run in the tests (only `vqametric ...` and "
                                 f"`python ...` commands run); mark the block with <!-- skip: REASON -->")
    together = []
    for c in cmds:
        if c.text.startswith("vqametric ") and not has_shell_syntax(c.text):
            status, out = run_in_process(c.text)
        else:
            status, out = run_with_bash(c.text)
        if status != c.status:
            raise AssertionError(f"{page}:{c.line}: `{c.text}` exited with status {status}, expected {c.status}"
                                 f"\n{out}")
        if c.expected is not None:
            check(c.expected, out, f"{page}:{c.line}")
        together.append(out)
    if block.output is not None:
        check(block.output.code, "".join(together), f"{page}:{block.line}")


# ----------------------------------------------------------------------------------------------
# the tests


def page_param(page: str):
    marks = [pytest.mark.xfail(strict=False, reason=KNOWN_FAILURES[page])] if page in KNOWN_FAILURES else []
    return pytest.param(page, id=page, marks=marks)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A fresh working directory and user models folder, the built-in registry; afterwards the
    registry as it was."""
    before = fresh_registry_state()
    set_registry_state(_PRISTINE)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("VQAMETRIC_MODELS", str(tmp_path / "models"))
    for name in ("TRITON_INTERPRET", "VQAMETRIC_FORCE_REFERENCE"):  # other test modules set them
        monkeypatch.delenv(name, raising=False)
    yield work
    set_registry_state(before)


@pytest.mark.parametrize("page", [page_param(p) for p in PAGES])
def test_examples(page, isolated):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        blocks = parse_blocks(f.read())
    ns: dict = {"__name__": "__docs__"}
    for block in blocks:
        try:
            reason = skip_reason(block)
        except AssertionError as e:
            raise AssertionError(f"{page}: {e}") from None
        runnable = block.lang in PYTHON + SHELL + CONSOLE
        if reason is not None:
            assert runnable, f"{page}:{block.line}: a skip marker on a block that is not an example"
            continue
        if block.lang in PYTHON:
            run_python(block, ns, page)
        elif runnable:
            run_shell(block, page)


def test_the_runner_reads_pages_as_documented():
    page = textwrap.dedent('''\
        ```python
        print(1 + 1)
        ```

        ```text
        2
        ```

        <!-- skip: needs a GPU -->
        ```bash
        pip install x
        ```

        <!-- skip -->
        ```python
        >>> 1
        1
        ```

        ```console
        $ vqametric score a.mp4 \\
            --format csv   # exit status 1
        a
        b
        $ python -c "print(3)"
        3
        ```
        ''')
    blocks = parse_blocks(page)
    assert [b.lang for b in blocks] == ["python", "bash", "python", "console"]
    assert blocks[0].output.code == "2\n" and blocks[1].output is None
    assert skip_reason(blocks[1]) == "needs a GPU"
    with pytest.raises(AssertionError, match="needs a reason"):
        skip_reason(blocks[2])
    (a, b) = commands(blocks[3])
    assert (a.text, a.status, a.expected) == ("vqametric score a.mp4 --format csv   # exit status 1", 1, "a\nb")
    assert (b.text, b.status, b.expected) == ('python -c "print(3)"', 0, "3")
    assert not has_shell_syntax(a.text) and has_shell_syntax("vqametric score a.mp4 2> err.txt")
    with pytest.raises(AssertionError, match="cannot run"):
        run_shell(parse_blocks("```bash\npip install x\n```\n")[0], "page.md")
    check("a ... c\n", "a  b b\nc\n", "here")
    with pytest.raises(AssertionError, match="output differs"):
        check("a\n", "b\n", "here")
