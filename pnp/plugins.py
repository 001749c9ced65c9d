"""Plugins: modules that register priors, algorithms and operators before a command runs.

A plugin is an importable module whose import (or whose ``register()`` function) calls
:func:`pnp.registry.register_prior`, :func:`pnp.registry.register_algorithm` or
:func:`problems.spec.register_operator`. Registered names then work in every job -- ``solve``,
``solve --input-dir``, ``compare`` and the robustness prior study -- and appear in ``--help``.

Three ways to load one, all honoured by the ``stablepnp`` command:

* ``stablepnp --plugin MODULE COMMAND ...`` (repeatable; also accepted after the command);
* the environment variable ``STABLEPNP_PLUGINS=mod_a,mod_b``;
* an installed distribution's entry point in the group ``stablepnp.plugins``, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."stablepnp.plugins"]
      mylab = "mylab_pnp.plugin"          # a module, or "module:function" (called once)

Examples
--------
>>> from pnp.plugins import load_plugins
>>> load_plugins([], environment=False, entry_points=False)
[]
"""

from __future__ import annotations

import importlib
import os
from typing import Iterable

__all__ = ["ENTRY_POINT_GROUP", "ENVIRONMENT_VARIABLE", "load_plugins", "loaded_plugins"]

#: Entry-point group scanned for plugins of installed distributions.
ENTRY_POINT_GROUP = "stablepnp.plugins"
#: Environment variable holding comma-separated plugin module names.
ENVIRONMENT_VARIABLE = "STABLEPNP_PLUGINS"

_LOADED: dict[str, str] = {}  # target -> where it came from


def loaded_plugins() -> dict[str, str]:
    """The plugins loaded in this process: ``{module or module:function: source}``."""
    return dict(_LOADED)


def _load(target: str, source: str) -> None:
    if target in _LOADED:
        return
    module_name, _, function = target.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ValueError(f"plugin {target!r} ({source}) is not a module name; give e.g. 'mylab.plugin' "
                         "or 'mylab.plugin:register'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"plugin {module_name!r} ({source}) could not be imported: {exc}; install it or "
                          "put it on PYTHONPATH") from None
    if function:
        register = getattr(module, function, None)
        if not callable(register):
            raise ImportError(f"plugin {target!r} ({source}): {module_name} has no function {function}()")
        register()
    _LOADED[target] = source


def load_plugins(modules: Iterable[str] = (), *, environment: bool = True, entry_points: bool = True) -> list[str]:
    """Import the plugins of the installed entry points, of ``$STABLEPNP_PLUGINS`` and ``modules``.

    Each is imported once per process (again-loading is a no-op). Returns the targets loaded by
    this call, in order.

    Raises
    ------
    ImportError
        A plugin cannot be imported (one line naming it and where it was listed).
    ValueError
        A listed name is not a module name.
    """
    targets: list[tuple[str, str]] = []
    if entry_points:
        from importlib.metadata import entry_points as _entry_points

        for ep in _entry_points(group=ENTRY_POINT_GROUP):
            targets.append((ep.value.strip(), f"entry point {ep.name!r} of group {ENTRY_POINT_GROUP}"))
    if environment:
        for name in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","):
            if name.strip():
                targets.append((name.strip(), f"${ENVIRONMENT_VARIABLE}"))
    targets.extend((str(name).strip(), "--plugin") for name in modules)
    done: list[str] = []
    for target, source in targets:
        if target not in _LOADED:
            _load(target, source)
            done.append(target)
    return done
