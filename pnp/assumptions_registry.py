"""The registry of algorithm classes and their theorems, by name (no project imports: a leaf).

Every :class:`pnp.run.Algorithm` subclass that declares ``name`` and ``theory`` is entered here
when it is defined, so that :func:`pnp.assumptions.check_assumptions` finds a theorem by name,
:func:`pnp.inexact.default_schedule` the inner-error schedule it needs, and
:mod:`pnp.acceleration` which algorithms it can accelerate, without any of them listing names.
A later class of the same name (any case) replaces the earlier one.

Examples
--------
>>> import pnp
>>> theory_named("fista") is pnp.FISTA.theory, algorithm_named("Pgd") is pnp.PGD
(True, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["register_entry", "register_class", "theories", "theory_named", "algorithm_named", "algorithm_classes"]

# name (upper case) -> (name as declared, theory); read by pnp.assumptions.check_assumptions
_THEORIES: dict[str, tuple[str, Any]] = {}
# name (upper case) -> algorithm class
_CLASSES: dict[str, type] = {}


def register_entry(name: str, theory: Any) -> None:
    """Enter ``theory`` under ``name`` (the type check is :func:`pnp.assumptions.register_theory`'s)."""
    _THEORIES[name.upper()] = (name, theory)


def register_class(cls: type) -> None:
    """Enter the algorithm class ``cls`` under its ``name``."""
    _CLASSES[str(cls.name).upper()] = cls


def _load_builtins() -> None:
    # the package loads its modules lazily: the built-in classes enter these tables when
    # pnp.algorithms is first imported, which a lookup by name does here if nobody has yet
    if "PGD" not in _CLASSES:
        import importlib

        importlib.import_module("pnp.algorithms")


def theories() -> dict[str, tuple[str, Any]]:
    """``{NAME: (name as declared, theory)}`` of every registered theorem (built-ins loaded)."""
    _load_builtins()
    return _THEORIES


def theory_named(name: str) -> Any:
    """The theorem registered under ``name`` (any case), or None."""
    _load_builtins()
    entry = _THEORIES.get(str(name).upper())
    return None if entry is None else entry[1]


def algorithm_named(name: str) -> type | None:
    """The algorithm class registered under ``name`` (any case), or None."""
    _load_builtins()
    return _CLASSES.get(str(name).upper())


def algorithm_classes() -> tuple[type, ...]:
    """Every registered algorithm class, in the order their names were first defined."""
    _load_builtins()
    return tuple(_CLASSES.values())
