"""Lazy public names (PEP 562): a package lists the module that defines each name, and the module
is imported on first use, so light entry points (``vqametric --version``) never load torch."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps a public name to the submodule
    (relative, e.g. ``"functional"`` or ``"fast.distortions"``) that defines it; a name that is
    the submodule itself maps to ``"<submodule>:"``. The value is cached in ``namespace``."""
    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = names[name].partition(":")
        loaded = importlib.import_module(f".{module}", package)
        value = loaded if names[name].endswith(":") else getattr(loaded, attr or name)
        namespace[name] = value
        return value
    return __getattr__
