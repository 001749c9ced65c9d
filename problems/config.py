"""Strict reading of the project's YAML configs, shared by every package.

Three pieces, each giving one-line ``ValueError`` messages:

* :func:`load_yaml_mapping` reads a file with :class:`StrictLoader` (a key given twice is refused);
* :func:`check_keys` / :func:`from_mapping` refuse an unknown key, listing the valid ones, and
  :func:`from_mapping` builds the dataclass (optionally checking values against its type hints);
* the ``as_*`` validators coerce one field and name it when they refuse it.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Point:
...     x: int = 0
...     y: int = 0
>>> from_mapping(Point, {"x": 2}, "point")
Point(x=2, y=0)
>>> from_mapping(Point, {"z": 1}, "point")
Traceback (most recent call last):
...
ValueError: unknown key 'z' in point; valid keys: x, y
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import yaml

__all__ = [
    "StrictLoader",
    "load_yaml_mapping",
    "check_keys",
    "check_field_types",
    "from_mapping",
    "field_error",
    "as_str",
    "as_bool",
    "as_int",
    "as_float",
    "as_choice",
]


# ----------------------------------------------------------------------------------------------
# YAML


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently).

    Examples
    --------
    >>> yaml.load("a: 1\\nb: 2", Loader=StrictLoader)
    {'a': 1, 'b': 2}
    >>> yaml.load("a: 1\\na: 2", Loader=StrictLoader)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    problems.config._DuplicateKeyError: ...
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                break  # unhashable keys: the base class reports them
            if key in seen:
                first, again = seen[key].line + 1, key_node.start_mark.line + 1
                where = f"twice at line {first}" if first == again else f"at lines {first} and {again}"
                raise _DuplicateKeyError(None, None, f"duplicate key {str(key)!r} {where}; keep one of them", None)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def check_output_file(path: str | Path, what: str) -> Path:
    """Refuse a write target that exists and is not a regular file (a device, a FIFO, a folder).

    Written files are replaced through a temporary file and a rename, which would replace such a
    target instead of writing into it (as root: a device node).
    """
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ValueError(f"{what}: '{p}' exists and is not a regular file; give the path of a file to write")
    if p.is_symlink():
        raise ValueError(f"{what}: '{p}' is a symbolic link; give the path of a regular file to write")
    return p


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping; an empty file gives ``{}``.

    Every config of the project is read here, with :class:`StrictLoader`: a key given twice in
    one mapping is an error (naming the key and both lines), never "the last one wins".

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unreadable file, invalid YAML (with line and column), or a top level that is not a
        mapping with string keys. Messages are one line and name the file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"config file '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"cannot read config file '{path}': {reason}") from None
    try:
        data = yaml.load(text, Loader=StrictLoader)  # safe constructors only, duplicate keys refused
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"config file '{path}' is not valid YAML: {problem}{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"config file '{path}' must contain a mapping of keys to values, got {type(data).__name__}"
        )
    for key in data:
        if not isinstance(key, str):
            raise ValueError(f"config file '{path}' has a non-string key {key!r}; quote it")
    return data


# ----------------------------------------------------------------------------------------------
# strict mappings


def check_keys(data: Any, valid: Sequence[str], where: str, *, none_is_empty: bool = False) -> dict[str, Any]:
    """``data`` as a dict once it is known to be a mapping with keys among ``valid``.

    The first unknown key (in ``data``'s order) is reported with ``valid`` in the order given.
    ``none_is_empty`` reads ``None`` (an empty YAML section) as ``{}``.

    Examples
    --------
    >>> check_keys({"b": 1}, ["a", "b"], "section 's'")
    {'b': 1}
    >>> check_keys([1], ["a"], "section 's'")
    Traceback (most recent call last):
    ...
    ValueError: section 's' must be a mapping of keys to values, got list
    """
    if data is None and none_is_empty:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    for key in data:
        if key not in valid:
            raise ValueError(f"unknown key {str(key)!r} in {where}; valid keys: {', '.join(valid)}")
    return dict(data)


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field annotation (scalars, optionals, tuples; others pass)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(_type_ok(v, args[0]) for v in items) if args else True
    return True


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_hint_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_hint_name(typing.get_args(hint)[0])}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def check_field_types(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Refuse a value that does not fit the type hint of its field of the dataclass ``cls``.

    Scalars, optionals and tuples are checked (a single value stands for a one-item tuple);
    other hints accept anything.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Job:
    ...     steps: int = 1
    >>> check_field_types(Job, {"steps": "ten"}, "job")
    Traceback (most recent call last):
    ...
    ValueError: job.steps must be int, got 'ten'
    """
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ValueError(f"{where}.{key} must be {_hint_name(hints[key])}, got {value!r}")


def from_mapping(cls: type, data: Any, where: str, *, check_types: bool = False, context: bool = False,
                 none_is_empty: bool = False) -> Any:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys (see :func:`check_keys`).

    ``check_types`` first checks the values against the field type hints (:func:`check_field_types`).
    An error of the constructor is re-raised with `` (in WHERE)`` appended when ``context``;
    otherwise a ``ValueError`` passes unchanged and a ``TypeError`` becomes ``WHERE: ...``.
    """
    data = check_keys(data, [f.name for f in dataclasses.fields(cls)], where, none_is_empty=none_is_empty)
    if check_types:
        check_field_types(cls, data, where)
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        if context:
            raise type(exc)(f"{exc} (in {where})") from None
        if isinstance(exc, TypeError):
            raise ValueError(f"{where}: {exc}") from None
        raise


# ----------------------------------------------------------------------------------------------
# field validators: one-line errors naming the section and the field


def field_error(section: str, name: str, expected: str, value: Any) -> ValueError:
    """The error for a field whose value has the wrong type.

    Examples
    --------
    >>> field_error("solver", "tol", "a number", "x")
    ValueError("solver field 'tol' must be a number, got 'x' (str)")
    """
    return ValueError(f"{section} field {name!r} must be {expected}, got {value!r} ({type(value).__name__})")


def as_str(value: Any, name: str, section: str) -> str:
    """A string (a path is turned into one)."""
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str):
        raise field_error(section, name, "a string", value)
    return value


def as_bool(value: Any, name: str, section: str) -> bool:
    """``True`` or ``False``, nothing else (no 0/1, no "yes")."""
    if not isinstance(value, bool):
        raise field_error(section, name, "true or false", value)
    return value


def as_int(value: Any, name: str, section: str, *, minimum: int, optional: bool = False,
           maximum: int | None = None) -> int | None:
    """An integer in ``[minimum, maximum]`` (a float with an integer value is accepted).

    Examples
    --------
    >>> as_int(3.0, "size", "problem spec", minimum=1)
    3
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            expected = f"an integer >= {minimum}" + (" or null" if optional else "")
            raise field_error(section, name, expected, value)
    if value < minimum:
        raise ValueError(f"{section} field {name!r} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{section} field {name!r} must be <= {maximum}, got {value}")
    return int(value)


def as_float(value: Any, name: str, section: str, *, minimum: float = 0.0, exclusive: bool = False,
             optional: bool = False) -> float | None:
    """A finite number ``>= minimum`` (``> minimum`` when ``exclusive``); numeric strings are read.

    Examples
    --------
    >>> as_float("1e-2", "sigma", "problem spec")  # YAML 1.1 reads 1e-2 (no dot) as a string
    0.01
    """
    if value is None and optional:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise field_error(section, name, "a number" + (" or null" if optional else ""), value)
    value = float(value)
    if not math.isfinite(value) or not (value > minimum if exclusive else value >= minimum):
        raise ValueError(f"{section} field {name!r} must be a finite number {'>' if exclusive else '>='} "
                         f"{minimum:g}, got {value:g}")
    return value


def as_choice(value: Any, name: str, section: str, choices: Collection[str]) -> str:
    """One of ``choices``, matched without case or surrounding blanks; returns the canonical name.

    Examples
    --------
    >>> as_choice(" FISTA", "algorithm", "solver", ("pgd", "fista"))
    'fista'
    """
    if not isinstance(value, str):
        raise field_error(section, name, f"one of {', '.join(choices)}", value)
    key = value.strip().lower()
    if key not in choices:
        raise ValueError(f"{section} field {name!r} must be one of {', '.join(choices)}, got {value!r}")
    return key
