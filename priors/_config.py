"""Small helpers shared by the strict config parsers of priors/."""

from __future__ import annotations

from typing import Any


def parse_number(value: Any, name: str) -> float:
    """A float from a number or a fraction string such as '25/255' (YAML has no arithmetic)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            if "/" in value:
                a, b = value.split("/")
                return float(a) / float(b)
            return float(value)
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"{name} must be a number or a fraction like '25/255', got {value!r}")


def strict_keys(d: dict, valid: set[str], where: str) -> None:
    """Refuse unknown keys with a one-line message that lists the valid ones."""
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' in {where}; valid keys: {', '.join(sorted(valid))}")
