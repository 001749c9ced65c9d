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


class ModelConfigMixin:
    """``to_dict`` / strict ``from_dict`` shared by the frozen model-config dataclasses.

    Float fields accept numbers or fraction strings; ``sigma_range`` is a pair of them.
    """

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["sigma_range"] = list(d["sigma_range"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        fields = cls.__dataclass_fields__
        strict_keys(d, set(fields), "model config")
        d = dict(d)
        for key, value in d.items():
            if key == "sigma_range":
                d[key] = tuple(parse_number(v, "model.sigma_range") for v in value)
            elif isinstance(fields[key].default, float):
                d[key] = parse_number(value, f"model.{key}")
        return cls(**d)
