"""A composition of averaged ridge gradient steps: ``D = D_K o ... o D_1``, each ``D_k`` its own ridge model.

Each block is a one-step :class:`priors.ridge.RidgeRegularizer` ``D_k(x) = x - (2 c_k / L_k) grad R_k(x)``
with its own kernels, splines, ``mu_k(sigma)`` and step fraction ``c_k(sigma) <= safety``: an
``alpha_k``-averaged map with ``alpha_k = max_sigma c_k(sigma)`` (Bauschke-Combettes Cor. 18.17).
The composition of averaged maps is averaged with the constant of
:func:`priors.integrators.composed_alpha` (Combettes & Yamada 2015, Prop. 2.5), and nonexpansive.
This is the untied network of Sherry et al. (one convex potential per layer) with the learned
spline activations and composed 13x13 filters of the ridge model, in a few blocks instead of many
sub-steps.  Unlike a single ridge model it is no gradient of one convex function: it is used as a
Plug-and-Play denoiser whose averagedness is the certificate.

A trained one-step ridge model warm-starts a stack (``init_from`` in a training config): its
weights go into every block, the first block keeps its step and the others start near the
identity (:func:`stack_from_single`), so the stack starts as the trained model.

Examples
--------
>>> import torch
>>> net = RidgeStack(blocks=2, hidden=2, channels=4, kernel_size=3, knots=5)
>>> net(torch.rand(1, 1, 16, 16), 25 / 255).shape
torch.Size([1, 1, 16, 16])
>>> cert = net.certificate()
>>> cert.lipschitz, cert.alpha < 1
(1.0, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import deepinv
import torch
from torch import Tensor, nn

from .base import Certificate
from .certify import cached_with_search
from .integrators import composed_alpha
from .ridge import RidgeConfig, RidgeRegularizer, transfer_state

__all__ = ["RidgeStackConfig", "RidgeStack", "stack_from_single"]

#: step_raw of a block that starts near the identity: c = safety * sigmoid(-4) ~ 0.017
_QUIET_STEP = (-4.0, 0.0)


@dataclass(frozen=True)
class RidgeStackConfig(RidgeConfig):
    """A :class:`priors.ridge.RidgeConfig` for every block, and the number of blocks."""

    blocks: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 1:
            raise ValueError(f"blocks must be an integer >= 1, got {self.blocks!r}")
        if self.denoiser != "onestep" or not self.certified:
            raise ValueError("a ridge stack composes certified one-step blocks: denoiser must be 'onestep' and "
                             "tied / monotone / step_cap true")

    def block(self) -> RidgeConfig:
        """The config of one block."""
        return RidgeConfig(**{f.name: getattr(self, f.name) for f in fields(RidgeConfig)})


class RidgeStack(deepinv.models.Denoiser):
    """``D(x, sigma) = D_K(... D_1(x, sigma) ..., sigma)`` with one-step ridge blocks (see the module docstring)."""

    def __init__(self, config: RidgeStackConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = RidgeStackConfig.resolve(config, overrides)
        self.config = cfg
        self.blocks = nn.ModuleList(RidgeRegularizer(cfg.block()) for _ in range(cfg.blocks))

    def forward(self, x: Tensor, sigma: float | Tensor = 25 / 255, *args: Any, **kwargs: Any) -> Tensor:
        for block in self.blocks:
            x = block(x, sigma)
        return x

    def certificate(self, *, adversarial: bool = False, **kwargs: Any) -> Certificate:
        """Lipschitz 1 and the composed averagedness constant of the blocks (rigorous part cached)."""
        return cached_with_search(self, self._certificate, adversarial=adversarial, **kwargs)

    @torch.no_grad()
    def _certificate(self) -> Certificate:
        t0 = time.perf_counter()
        parts = [block.certificate() for block in self.blocks]
        alphas = [c.alpha for c in parts]
        alpha = None if any(a is None for a in alphas) else composed_alpha(alphas)
        return Certificate(
            lipschitz=1.0,
            alpha=alpha if alpha is not None and alpha < 1 else None,
            method=(f"composition of {len(parts)} averaged ridge gradient steps (each: {parts[0].method}); "
                    "averaged with the composed constant (Combettes-Yamada 2015, Prop. 2.5)"),
            seconds=time.perf_counter() - t0,
            details={"block_alphas": alphas, "block_grad_lipschitz": [c.details["grad_lipschitz"] for c in parts]},
        )

    def param_groups(self, lr: float) -> list[dict]:
        """The ridge recipe's groups (kernels, splines, scalars), each holding that part of every block."""
        groups = [block.param_groups(lr) for block in self.blocks]
        return [{"params": [p for g in groups for p in g[i]["params"]], "lr": groups[0][i]["lr"]}
                for i in range(len(groups[0]))]


def stack_from_single(src: RidgeRegularizer, dst: RidgeStack) -> dict:
    """``dst``'s state dict with ``src`` (a one-step ridge model) in every block; blocks after the first
    start near the identity (step fraction ``safety * sigmoid(-4)``), so ``dst`` starts close to ``src``."""
    if src.config.denoiser != "onestep":
        raise ValueError("a ridge stack starts from a one-step ridge model (denoiser: onestep)")
    state = {}
    for i, block in enumerate(dst.blocks):
        own = src.state_dict() if i == 0 else transfer_state(src, block)
        if i > 0:
            own["step_raw"] = torch.tensor(_QUIET_STEP, dtype=own["step_raw"].dtype)
        state.update({f"blocks.{i}.{k}": v.clone() for k, v in own.items()})
    return state
