"""Command-line options derived from a config dataclass (:mod:`vqametric.train.config`): one
option per key (``--spatial-stride`` for ``spatial_stride``, ``--no-vmaf`` for a boolean that
defaults to true), checked with the key's type as argparse parses it, and the command line that
gives a config back."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from .config import Override, Spec, TrainConfigError, keys, parse_text


def flag_name(spec: Spec) -> str:
    """``--spatial-stride`` for ``spatial_stride``; ``--no-vmaf`` for a boolean that defaults to true."""
    name = spec.name.replace("_", "-")
    return f"--no-{name}" if spec.kind == "bool" and spec.default is True else f"--{name}"


def _flag_type(spec: Spec) -> Callable[[str], str]:
    def checked(text: str) -> str:
        try:
            parse_text(text, spec, "")
        except TrainConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text
    checked.__name__ = spec.kind
    return checked


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per key of ``cls`` (sub-tables excepted); a value is checked as it is parsed, so
    argparse reports a bad one with the option's name. Options not given stay out of the
    namespace (see :func:`flag_overrides`)."""
    for spec in keys(cls).values():
        if spec.kind == "table":
            continue
        if spec.kind == "bool":
            off = spec.default is True
            parser.add_argument(flag_name(spec), dest=spec.name, action="store_const", default=argparse.SUPPRESS,
                                const="false" if off else "true",
                                help=(f"leave out: {spec.help}" if off else spec.help) if spec.help else None)
            continue
        text = spec.help
        if spec.required:
            text = f"{text} (required)".strip()
        elif spec.default is not None and "default:" not in text:
            shown = (",".join(f"{k}={v:g}" for k, v in spec.default.items()) if spec.kind == "float_map"
                     else spec.default)
            text = f"{text} (default: {shown})".strip()
        parser.add_argument(flag_name(spec), dest=spec.name, default=argparse.SUPPRESS, help=text,
                            metavar=spec.name.upper(), type=_flag_type(spec))


def flag_overrides(namespace: argparse.Namespace, cls: type) -> list[Override]:
    """The options of :func:`add_flags` that were given, as overrides."""
    given = vars(namespace)
    return [(flag_name(s), s.name, given[s.name]) for s in keys(cls).values() if s.name in given]


def command_line(cfg: Any, prefix: str, placeholders: dict[str, str] | None = None) -> str:
    """A command that gives ``cfg``: ``prefix`` and an option for every key not at its default;
    ``placeholders`` stand for values (``{"data": "DATA"}``)."""
    parts = [prefix]
    for spec in keys(type(cfg)).values():
        v = getattr(cfg, spec.name)
        if spec.kind == "table" or (not spec.required and v == spec.default):
            continue
        if spec.kind == "bool":
            parts.append(flag_name(spec))
            continue
        if spec.kind == "float_map":
            v = ",".join(f"{k}={x:g}" for k, x in v.items())
        elif spec.kind == "str_list":
            v = ",".join(v)
        parts += [flag_name(spec), (placeholders or {}).get(spec.name, str(v))]
    return " ".join(parts)


class LazyParser(argparse.ArgumentParser):
    """A subcommand parser that adds its options on first use (``populate(parser)``), so that
    ``vqametric --help`` and the light commands do not import what they need."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ready(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ready()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ready()
        return super().format_help()


__all__ = ["flag_name", "add_flags", "flag_overrides", "command_line", "LazyParser"]
