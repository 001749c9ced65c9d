"""Small helpers shared by the strict config parsers of priors/."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

from problems.config import check_keys


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


class ModelConfigMixin:
    """``to_dict`` / strict ``from_dict`` shared by the frozen model-config dataclasses.

    Float fields accept numbers or fraction strings; ``sigma_range`` is a pair of them.
    """

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sigma_range"] = list(d["sigma_range"])
        return d

    @classmethod
    def resolve(cls, config: Any = None, overrides: dict[str, Any] | None = None):
        """``config`` (default: all defaults) with keyword ``overrides`` applied and validated strictly."""
        cfg = config or cls()
        return cls.from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        fields = cls.__dataclass_fields__
        check_keys(d, sorted(fields), "model config")
        d = dict(d)
        for key, value in d.items():
            default = fields[key].default
            if key == "sigma_range":
                if not isinstance(value, (list, tuple)) or len(value) != 2:
                    raise ValueError(f"model.sigma_range must be a pair [lo, hi] such as [5/255, 55/255], got {value!r}")
                d[key] = tuple(parse_number(v, "model.sigma_range") for v in value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"model.{key} must be true or false, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"model.{key} must be an integer, got {value!r}")
            elif isinstance(default, float):
                d[key] = parse_number(value, f"model.{key}")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ValueError(f"model.{key} must be a string, got {value!r}")
        return cls(**d)


def warn_outside_range(model: Any, s: Any, consequence: str = "results may be poor", stacklevel: int = 4) -> None:
    """Warn once per model when noise levels ``s`` (tensor) leave its trained ``sigma_range``."""
    lo, hi = model.config.sigma_range
    if getattr(model, "_warned_range", False) or not (float(s.min()) < lo * 0.999 or float(s.max()) > hi * 1.001):
        return
    warnings.warn(
        f"sigma {float(s.min()):.4f}..{float(s.max()):.4f} lies outside the trained range [{lo:.4f}, {hi:.4f}] "
        f"of this {type(model).__name__}; {consequence}", stacklevel=stacklevel)
    model._warned_range = True
