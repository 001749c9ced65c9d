"""Lazy package exports: a package's public names are imported from their submodule on first use.

The packages (``operators``, ``problems``, ``priors``, ``pnp``) re-export their public classes at
the top level; importing them eagerly would load torch, deepinv and torchvision before the command
line has even parsed its arguments. :func:`lazy_exports` gives a package a module ``__getattr__``
(PEP 562) that imports the submodule holding a name when the name is first read, and a ``__dir__``
that lists the exports.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps an exported name to ``"module"`` (the
    same name in that module), ``"module:attribute"`` (a renamed export) or ``"module:"`` (the submodule
    itself); relative modules start with a dot; a resolved name is cached in
    ``namespace`` (the package's globals) so the lookup happens once."""

    def getattr_(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, colon, attribute = target.partition(":")
        module = importlib.import_module(module_name, package)
        # "module:" is the submodule itself, "module:attr" a renamed export, "module" the same name
        value = module if colon and not attribute else getattr(module, attribute or name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(table))

    return getattr_, dir_
