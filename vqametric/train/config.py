"""One configuration system for every training mode: typed dataclasses, read from TOML or JSON,
overridden from the command line.

A config is a dataclass whose fields are the keys of a table. A field's type says what the key
holds: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]`` (one of the strings),
``list[str]`` / ``tuple[str, ...]``, ``dict[str, float]``, ``X | None`` (nullable), or another
dataclass (a sub-table such as ``[model]``). :func:`option` adds what a type cannot say: bounds,
allowed names, help, and whether the value is a path. The schema is read from the dataclass, so a
key exists exactly where a field does::

    @dataclass(kw_only=True)
    class Run:
        manifest: str = option(help="training manifest", path="file")
        steps: int = option(help="optimiser steps", lo=1)
        learning_rate: float = option(1e-5, positive=True)

    cfg = load(Run, "run.toml", [("--set", "steps", "20")])

Errors are :class:`TrainConfigError` naming the file (or the option), the table, the key and the
fix, with the closest known key suggested for an unknown one. Relative paths in a file are
resolved against the file's folder; paths given on the command line against the working folder.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Literal, Sequence, Union

from ..errors import VQAMetricError

REQUIRED = dataclasses.MISSING
#: An override: ``(where it came from, dotted key, text)``, e.g. ``("--set", "grpo.beta", "0.1")``.
Override = tuple[str, str, str]


class TrainConfigError(VQAMetricError, ValueError):
    """The training config cannot be read or holds a value that cannot be used."""


def option(default: Any = REQUIRED, *, help: str = "", lo: float | None = None, hi: float | None = None,
           positive: bool = False, choices: Sequence[Any] = (), names: Sequence[str] = (),
           zero_is_none: bool = False, path: Literal["file", "local"] | None = None,
           exclude: Sequence[str] = (), factory: Callable[[], Any] | None = None) -> Any:
    """A config field.

    ``default``: the value when the key is left out (none: the key is required; a list or dict is
    copied per instance). ``lo`` / ``hi``: inclusive bounds of a number; ``positive``: it must be
    above 0. ``choices``: the allowed values. ``names``: the allowed keys of a ``dict[str, float]``.
    ``zero_is_none``: 0 means "off" (TOML has no null). ``path``: ``"file"`` is resolved against
    the config's folder, ``"local"`` only when that file exists (else a Hub id or a model name).
    ``exclude``: for a sub-table, fields of its dataclass that are not keys. ``factory``: makes the
    default of each instance (a sub-table's dataclass, for example)."""
    meta = {"help": help, "lo": lo, "hi": hi, "positive": positive, "choices": tuple(choices),
            "names": tuple(names), "zero_is_none": zero_is_none, "path": path, "exclude": tuple(exclude)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def internal(default: Any = None) -> Any:
    """A field that is not a config key (set by the program, e.g. the config's source file)."""
    return dataclasses.field(default=default, metadata={"internal": True})


@dataclass(frozen=True)
class Spec:
    """One key of a table, read from a dataclass field and its type."""
    name: str
    kind: str                      # bool, int, float, str, str_list, float_map or table
    nullable: bool
    default: Any
    table: type | None = None
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    positive: bool = False
    choices: tuple = ()
    names: tuple = ()
    zero_is_none: bool = False
    path: str | None = None
    exclude: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _kind(hint: Any) -> tuple[str, bool, tuple, type | None]:
    """``(kind, nullable, Literal choices, sub-table class)`` of a type hint."""
    nullable = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"a config field has one type (or that type | None), got {hint}")
        hint = args[0]
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return "table", nullable, (), hint
    if origin is Literal:
        return "str", nullable, typing.get_args(hint), None
    if origin in (list, tuple) and typing.get_args(hint)[0] is str:
        return "str_list", nullable, (), None
    if origin is dict and typing.get_args(hint) == (str, float):
        return "float_map", nullable, (), None
    if hint in (bool, int, float, str):
        return hint.__name__, nullable, (), None
    raise TypeError(f"unsupported config field type {hint}")


@cache
def keys(cls: type, exclude: tuple = ()) -> dict[str, Spec]:
    """The keys of dataclass ``cls`` (its fields less ``internal`` ones and ``exclude``), in order."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("internal") or f.name in exclude or f.name.startswith("_"):
            continue
        kind, nullable, literal, table = _kind(hints[f.name])
        if f.default is not REQUIRED:
            default = f.default
        elif f.default_factory is not REQUIRED:
            default = f.default_factory()
        else:
            default = REQUIRED
        out[f.name] = Spec(f.name, kind, nullable, default, table, meta.get("help", ""), meta.get("lo"),
                           meta.get("hi"), meta.get("positive", False), tuple(meta.get("choices", ())) or literal,
                           tuple(meta.get("names", ())), meta.get("zero_is_none", False), meta.get("path"),
                           tuple(meta.get("exclude", ())))
    return out


# ----------------------------------------------------------------------------------------------
# values
def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def suggest(name: str, known: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def check(value: Any, spec: Spec, where: str) -> Any:
    """``value`` (as TOML or JSON gives it) checked against ``spec``; returns the value to store.
    ``where`` starts every message (e.g. ``"run.toml: [grpo] beta"``)."""
    if value is None:
        if spec.nullable:
            return None
        raise TrainConfigError(_at(where, "null is not allowed; give a value or remove the key for its default"))
    k = spec.kind
    if k == "bool":
        if not isinstance(value, bool):
            raise TrainConfigError(_at(where, f"expected true or false, got {value!r} ({_type_name(value)})"))
        return value
    if k in ("int", "float"):
        return _number(value, spec, where)
    if k == "str":
        if not isinstance(value, str) or not value.strip():
            raise TrainConfigError(_at(where, f"expected a non-empty string, got {value!r} ({_type_name(value)})"))
        _check_choice(value, spec, where)
        return value
    if k == "str_list":
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            raise TrainConfigError(_at(where, f"expected a non-empty list of strings, got {value!r}"))
        return list(value)
    if k == "float_map":
        return _float_map(value, spec, where)
    raise TrainConfigError(_at(where, f"expected a table (key = value pairs), got {_type_name(value)}"))


def _number(value: Any, spec: Spec, where: str) -> int | float | None:
    is_int = spec.kind == "int"
    if isinstance(value, bool) or not isinstance(value, int if is_int else (int, float)):
        want = "an integer" if is_int else "a number"
        raise TrainConfigError(_at(where, f"expected {want}, got {value!r} ({_type_name(value)})"
                                   + ("; write it without quotes" if isinstance(value, str) else "")))
    x = int(value) if is_int else float(value)
    if not is_int and not math.isfinite(x):
        raise TrainConfigError(_at(where, f"expected a finite number, got {value!r}"))
    if spec.zero_is_none and x == 0:
        return None
    if spec.lo is not None and x < spec.lo:
        raise TrainConfigError(_at(where, f"{x:g} is below the minimum {spec.lo:g}"))
    if spec.hi is not None and x > spec.hi:
        raise TrainConfigError(_at(where, f"{x:g} is above the maximum {spec.hi:g}"))
    if spec.positive and not x > 0:
        raise TrainConfigError(f"{where} must be positive, got {x:g}".strip())
    _check_choice(x, spec, where)
    return x


def _check_choice(value: Any, spec: Spec, where: str) -> None:
    if spec.choices and value not in spec.choices:
        close = suggest(value, [str(c) for c in spec.choices]) if isinstance(value, str) else ""
        raise TrainConfigError(_at(where, f"{value!r} is not one of {', '.join(map(repr, spec.choices))}{close}"))


def _float_map(value: Any, spec: Spec, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise TrainConfigError(_at(where, f"expected a table of names to numbers, got {value!r}"))
    out = {}
    for name, v in value.items():
        if spec.names and name not in spec.names:
            raise TrainConfigError(_at(where, f"unknown name {name!r}{suggest(name, spec.names)}; known: "
                                              f"{', '.join(spec.names)}"))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise TrainConfigError(f"{where}.{name}: expected a finite number, got {v!r}")
        if spec.lo is not None and v < spec.lo:
            raise TrainConfigError(f"{where}.{name}: {v:g} is below the minimum {spec.lo:g}")
        out[name] = float(v)
    return out


def parse_text(text: str, spec: Spec, where: str) -> Any:
    """A command-line value of ``spec``'s type: ``true``/``false``, a number, a string, ``a,b``
    (a list), ``NAME=NUMBER,...`` (a table of numbers), ``null`` (a nullable key); then checked."""
    t = text.strip()
    if spec.nullable and t.lower() in ("null", "none"):
        return check(None, spec, where)
    k = spec.kind
    try:
        if k == "bool":
            flags = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                     "off": False}
            value: Any = flags.get(t.lower(), text)
        elif k == "int":
            value = int(t)
        elif k == "float":
            value = float(t)
        elif k == "str_list":
            value = [p.strip() for p in t.split(",") if p.strip()]
        elif k == "float_map":
            value = {}
            for part in filter(None, (p.strip() for p in t.split(","))):
                name, sep, number = part.partition("=")
                if not sep:
                    raise TrainConfigError(_at(where, f"{part!r} is not NAME=NUMBER"))
                value[name.strip()] = float(number)
        else:
            value = text
    except ValueError:
        want = {"int": "an integer", "float": "a number"}.get(k, "NAME=NUMBER,... with numbers")
        raise TrainConfigError(_at(where, f"expected {want}, got {text!r}")) from None
    return check(value, spec, where)


# ----------------------------------------------------------------------------------------------
# tables
def resolve_path(base: str, p: str) -> str:
    """``p`` with ``~`` expanded, relative to ``base`` unless absolute."""
    p = os.path.expanduser(p)
    return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))


def _resolved(value: Any, spec: Spec, base: str | None) -> Any:
    if base is None or spec.path is None or not isinstance(value, str):
        return value
    full = resolve_path(base, value)
    return full if spec.path == "file" or os.path.exists(full) else value


def build(cls: type, raw: Any, source: str, *, table: str | None = None, base: str | None = None,
          exclude: tuple = ()) -> Any:
    """An instance of ``cls`` from the table ``raw``: every key checked, defaults filled in, paths
    resolved against ``base``. Messages start with ``source`` (the file) and ``[table]``."""
    where = source if table is None else f"{source}: [{table}]"
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{where}: expected a table (key = value pairs), got {_type_name(raw)}")
    specs = keys(cls, exclude)
    tables = [n for n, s in specs.items() if s.kind == "table"]
    for name in raw:
        if name not in specs:
            known = sorted(n for n in specs if n not in tables) + [f"[{t}]" for t in tables]
            raise TrainConfigError(f"{where}: unknown key {name!r}{suggest(name, list(specs))}; "
                                   f"known: {', '.join(known)}")
    values = {}
    for name, spec in specs.items():
        if spec.kind == "table":
            values[name] = _sub_table(raw, spec, source, base)
        elif name in raw:
            values[name] = _resolved(check(raw[name], spec, f"{where} {name}"), spec, base)
        elif spec.required:
            hint = f" ({spec.help})" if spec.help else ""
            raise TrainConfigError(f"{where}: missing required key {name!r}{hint}")
    try:
        return cls(**values)
    except ValueError as e:     # the dataclass's own checks (__post_init__)
        raise TrainConfigError(f"{where}: {e}") from None


def _sub_table(raw: dict, spec: Spec, source: str, base: str | None) -> Any:
    if spec.name in raw:
        return build(spec.table, raw[spec.name], source, table=spec.name, base=base, exclude=spec.exclude)
    if spec.nullable:
        return None
    required = [s for s in keys(spec.table, spec.exclude).values() if s.required]
    if required:
        r = required[0]
        hint = f" ({r.help})" if r.help else ""
        raise TrainConfigError(f"{source}: missing table [{spec.name}] with at least {r.name} = ...{hint}")
    return build(spec.table, {}, source, table=spec.name, base=base, exclude=spec.exclude)


def to_table(obj: Any, exclude: tuple = ()) -> dict[str, Any]:
    """The keys of a config instance as plain JSON values (sub-tables as dicts, tuples as lists)."""
    out = {}
    for name, spec in keys(type(obj), exclude).items():
        v = getattr(obj, name)
        if spec.kind == "table" and v is not None:
            v = to_table(v, spec.exclude)
        elif isinstance(v, (list, tuple)):
            v = list(v)
        elif isinstance(v, dict):
            v = dict(v)
        out[name] = v
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw table of a ``.toml`` or ``.json`` config file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TrainConfigError(f"config file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".json"):
        raise TrainConfigError(f"{path}: unknown config extension {ext!r}; use .toml or .json")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f) if ext == ".toml" else json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TrainConfigError(f"{path}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise TrainConfigError(f"{path}: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except tomllib.TOMLDecodeError as e:
        raise TrainConfigError(f"{path}: invalid TOML ({e})") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: the config must be a table (a JSON object), got {_type_name(raw)}")
    return raw


def apply_overrides(raw: dict[str, Any], cls: type, overrides: Sequence[Override]) -> dict[str, Any]:
    """``raw`` with each override's value parsed by its field's type, checked, and set (paths
    resolved against the working folder). ``overrides``: ``(origin, "table.key", text)``."""
    for origin, dotted, text in overrides:
        where = origin if origin != "--set" else f"--set {dotted}"
        parts = dotted.strip().split(".")
        table, c, exclude = raw, cls, ()
        for i, part in enumerate(parts):
            specs = keys(c, exclude)
            if part not in specs:
                prefix = ".".join(parts[:i])
                shown = [f"{prefix}.{n}" if prefix else n for n in specs]
                raise TrainConfigError(f"{where}: unknown key {'.'.join(parts[:i + 1])!r}"
                                       f"{suggest('.'.join(parts[:i + 1]), shown)}; known: {', '.join(shown)}")
            spec = specs[part]
            if i < len(parts) - 1:
                if spec.kind != "table":
                    raise TrainConfigError(f"{where}: {'.'.join(parts[:i + 1])!r} is a value, not a table")
                sub = table.setdefault(part, {})
                if not isinstance(sub, dict):
                    raise TrainConfigError(f"{where}: {part!r} in the config file is not a table")
                table, c, exclude = sub, spec.table, spec.exclude
            elif spec.kind == "table":
                raise TrainConfigError(f"{where}: [{part}] is a table; set one of its keys, e.g. "
                                       f"{part}.{next(iter(keys(spec.table, spec.exclude)))}=VALUE")
            else:
                table[part] = _resolved(parse_text(text, spec, where), spec, os.getcwd())
    return raw


def load(cls: type, path: str | os.PathLike | None, overrides: Sequence[Override] = ()) -> Any:
    """``cls`` from the config file ``path`` (optional), then ``overrides`` (see
    :func:`apply_overrides`); relative paths in the file are resolved against its folder. A
    ``source`` field, when ``cls`` has one, is set to the file (or ``"command line"``)."""
    source = os.fspath(path) if path is not None else "command line"
    raw = read_config_file(source) if path is not None else {}
    base = os.path.dirname(os.path.abspath(source)) if path is not None else os.getcwd()
    cfg = build(cls, apply_overrides(raw, cls, overrides), source, base=base)
    if "source" in {f.name for f in dataclasses.fields(cls)}:
        cfg.source = source
    return cfg


def split_override(text: str) -> Override:
    """``"grpo.beta=0.1"`` -> ``("--set", "grpo.beta", "0.1")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TrainConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set steps=20 or --set grpo.beta=0.1")
    return "--set", key.strip(), value


def check_output_folder(output: str, overwrite: bool, source: str, note: str = "") -> None:
    """The output must be a folder that is new or empty, unless ``overwrite``."""
    if os.path.isfile(output):
        raise TrainConfigError(f"{source}: output {output!r} is a file; name a folder")
    if os.path.isdir(output) and os.listdir(output) and not overwrite:
        raise TrainConfigError(f"{source}: output folder {output!r} is not empty; choose a new folder or set "
                               f"overwrite = true{note}")


@dataclass(frozen=True)
class Job:
    """What ``vqametric train MODE`` runs, in three steps.

    ``load(config file or None, overrides) -> config``; ``preflight(config) -> dict``: the checks
    that load no model (the output folder, the data), returning what ``--check`` prints after the
    resolved config; ``run(config, echo) -> dict``: the training, returning the JSON summary the
    command prints (``echo`` takes progress lines, or is None)."""
    load: Callable[[str | None, Sequence[Override]], Any]
    preflight: Callable[[Any], dict[str, Any]]
    run: Callable[[Any, Callable[[str], None] | None], dict[str, Any]]


__all__ = ["TrainConfigError", "option", "internal", "Spec", "keys", "check", "parse_text", "build", "to_table",
           "read_config_file", "apply_overrides", "load", "split_override", "resolve_path", "check_output_folder",
           "Job", "suggest", "REQUIRED", "Override"]
