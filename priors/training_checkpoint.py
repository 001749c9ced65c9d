"""Reading a training checkpoint to resume from: complete, a stable-pnp file, and every value finite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .registry import CHECKPOINT_FORMAT

__all__ = ["load_training_checkpoint"]


def load_training_checkpoint(path: str | Path) -> dict:
    """The checkpoint dictionary at ``path``; a one-line ValueError when it cannot be resumed from."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / not a torch file
        raise ValueError(f"checkpoint '{path}' could not be loaded ({type(exc).__name__}); it may be truncated or not a stable-pnp file") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"'{path}' is not a stable-pnp training checkpoint")
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing or not isinstance(state["state_dict"], dict) or not isinstance(state["optimizer"], dict):
        raise ValueError(f"checkpoint '{path}' is incomplete (missing {', '.join(missing) or 'its weights'}); it was not "
                         "written by stablepnp train: start the run again with --overwrite")
    bad = _nonfinite(state["state_dict"]) or _nonfinite(state["optimizer"].get("state", {}), "optimizer state ")
    if bad:
        raise ValueError(f"checkpoint '{path}' holds non-finite values ({bad}): a run cannot continue from it; start "
                         "again with --overwrite, or resume from an earlier copy of the checkpoint")
    return state


#: What a training checkpoint must hold to be resumed.
_CHECKPOINT_KEYS = ("config", "state_dict", "optimizer", "scheduler", "ranks", "torch_rng", "step", "log")


def _nonfinite(tensors: Any, prefix: str = "") -> str:
    """The first entry of a (nested) mapping of tensors holding NaN or Inf, as ``"NAME has NaN"``; "" if none."""
    items = tensors.items() if isinstance(tensors, dict) else ()
    for key, value in items:
        if isinstance(value, dict):
            found = _nonfinite(value, f"{prefix}{key}.")
            if found:
                return found
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "Inf"
            return f"{prefix}{key} has {kind}"
    return ""
