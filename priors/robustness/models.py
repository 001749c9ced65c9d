"""Image classifiers with certified (or at least reported) l2 Lipschitz bounds.

Every network here is a plain sequence of layers, and every layer carries a rigorous
``lipschitz_bound()`` computed from its weights; the bound of the network is the product of all
of them (:meth:`SequentialClassifier.lipschitz_bound`), with no layer left out -- lifts, pools,
channel growth and the head included.  Four architectures share one skeleton

    lift -> [stage of residual blocks -> 1x1 channel growth -> pooling] x S -> global pool -> head

and differ in the residual blocks:

``nonexpansive``
    Sherry et al. (Physica D 2024) gradient-step blocks :class:`priors.averaged.GradientStepBlock`
    (``x - h W^T sigma(W x + b)``, step rule ``h L_sigma ||W||^2 <= 2 r c``); isometric
    zero-padding lift, norm-controlled 1x1 growth, norm-1 pooling, norm-controlled head: L <= 1.
``resnet``
    Unconstrained baseline: 3x3 stem, blocks ``x + C2 relu(C1 x)``, free 1x1 growth and head.  Its
    bound (product of ``1 + ||C2|| ||C1||`` etc.) is valid but very loose.
``node``
    Contractive convolutional neural ODE ``z' = -gamma z + sigma(K z + b)`` integrated by explicit
    Euler, trained with the contractivity-promoting regularisers of Zakwan, Xu, Ferrari-Trecate
    (2025) as described in :class:`ContractiveODEBlock`; the bound is checked a posteriori.
``gershgorin``
    Residual layers ``x - c W^T T^{-1} sigma(W x + b)`` whose diagonal ``T`` comes from Gershgorin
    discs so that the slope-restriction LMI holds (Juston et al. 2025, see
    :class:`GershgorinResidualBlock`): each layer is ``max(1, c - 1)``-Lipschitz with
    ``c < 1 + lipschitz``.

Between stages and before the head there are two layouts (``downsample`` / ``pooling``): the
paper's ``avgpool`` + global ``mean`` (norm 1, but only on signals constant over each window:
every other direction is attenuated, which caps the logit margins a 1-Lipschitz network can
reach), and ``unshuffle`` (space-to-depth, orthogonal) + ``flatten``, which keeps the norm of
every input; the second is our addition, measured side by side in the README.

The exact norms of the parameter-free layers (proved in their docstrings): 2x2 average pooling
has l2 norm exactly 1/2 (each output is the mean of 4 disjoint inputs: ``||(1/4) 1^T|| = 1/2``),
so :class:`ScaledAvgPool` uses ``2 * avgpool`` (norm 1); the global mean over ``H x W`` pixels has
norm ``1/sqrt(HW)``, so :class:`ScaledGlobalPool` uses ``sqrt(HW) * mean`` (norm 1, any size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

# the layers and the residual blocks live in their own modules; their names stay importable from here
from . import blocks, layers
from .blocks import (ContractiveODEBlock, GershgorinResidualBlock, GradientStepLayer, PlainConv, PlainResidualBlock,
                     gershgorin_diagonal)
from .layers import (ChannelLift, Flatten, NormedConv1x1, NormedLinear, PixelUnshuffle, ScaledAvgPool,
                     ScaledGlobalPool)

__all__ = ["ARCHITECTURES", "ClassifierConfig", *layers.__all__, *blocks.__all__, "SequentialClassifier",
           "build_classifier"]

ARCHITECTURES = ("nonexpansive", "resnet", "node", "gershgorin")


# --------------------------------------------------------------------------------------------
# the classifier


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of a :class:`SequentialClassifier` (stored in checkpoints).

    Attributes
    ----------
    arch : str
        One of ``nonexpansive``, ``resnet``, ``node``, ``gershgorin``.
    in_channels, num_classes : int
        Image channels and number of classes.
    widths : tuple of int
        Channels of each stage; stages after the first start with 1x1 growth and 2x2 pooling.
    depth : int
        Residual blocks per stage.
    kernel_size : int
        Odd kernel size of the block convolutions.
    negative_slope : float
        Leaky-ReLU slope in [0, 1] (slope-restricted activation).
    max_substeps, integrator
        Gradient-step blocks (``nonexpansive``).
    node_gamma, node_time, node_steps
        Neural-ODE blocks (``node``).
    gershgorin_lipschitz : float
        Per-layer Lipschitz target (>= 1) of the ``gershgorin`` blocks.
    downsample : str
        Between stages: ``avgpool`` (Sherry et al.'s layout: 1x1 growth, then ``2 * avgpool``) or
        ``unshuffle`` (space-to-depth, then a norm-controlled 1x1 from ``4 C`` channels).  Both have
        norm <= 1; ``unshuffle`` is orthogonal, ``avgpool`` discards 3/4 of the directions.
    pooling : str
        Before the head: ``mean`` (``sqrt(HW) * mean``, the paper's global mean) or ``flatten``
        (all features to the head; needs ``image_size``).
    image_size : int
        Input side, used only by ``pooling: flatten`` to size the head.
    """

    arch: str = "nonexpansive"
    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64)
    depth: int = 2
    kernel_size: int = 3
    negative_slope: float = 0.05
    integrator: str = "euler"
    max_substeps: int = 2
    node_gamma: float = 1.0
    node_time: float = 1.0
    node_steps: int = 2
    gershgorin_lipschitz: float = 1.0
    downsample: str = "avgpool"
    pooling: str = "mean"
    image_size: int = 28

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} unknown; valid: {', '.join(ARCHITECTURES)}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < self.in_channels:
            raise ValueError(f"widths must be non-empty and each >= in_channels ({self.in_channels}), got {self.widths}")
        if self.depth < 1 or self.num_classes < 2 or self.kernel_size % 2 == 0:
            raise ValueError("depth must be >= 1, num_classes >= 2 and kernel_size odd")
        if not 0 <= self.negative_slope <= 1:
            raise ValueError(f"negative_slope must lie in [0, 1], got {self.negative_slope}")
        if self.downsample not in ("avgpool", "unshuffle"):
            raise ValueError(f"downsample {self.downsample!r} unknown; valid: avgpool, unshuffle")
        if self.pooling not in ("mean", "flatten"):
            raise ValueError(f"pooling {self.pooling!r} unknown; valid: mean, flatten")
        if self.pooling == "flatten" and self.image_size % (2 ** (len(self.widths) - 1)):
            raise ValueError(f"pooling 'flatten' needs image_size divisible by 2^(stages - 1) = "
                             f"{2 ** (len(self.widths) - 1)}, got {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClassifierConfig":
        valid = sorted(cls.__dataclass_fields__)
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown model key {unknown[0]!r}; valid keys: {', '.join(valid)}")
        return cls(**d)


class SequentialClassifier(nn.Module):
    """A sequence of layers, each with ``lipschitz_bound()``; the network bound is their product.

    Parameters
    ----------
    layers : list of nn.Module
        Applied in order; the last one returns logits (B, K).
    config : ClassifierConfig
        Kept for checkpoints and reports.

    Examples
    --------
    >>> net = build_classifier(ClassifierConfig(widths=(4, 8), depth=1))
    >>> net(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> net.lipschitz_bound() <= 1.0 + 1e-6
    True
    """

    def __init__(self, layers: list[nn.Module], config: ClassifierConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def lipschitz_report(self) -> list[dict[str, Any]]:
        """One entry per layer: its type and rigorous bound (plus details where available)."""
        out = []
        for i, layer in enumerate(self.layers):
            details = layer.bound_details() if hasattr(layer, "bound_details") else {}
            bound = float(details["lipschitz"]) if "lipschitz" in details else float(layer.lipschitz_bound())
            out.append({"layer": i, "type": type(layer).__name__, "lipschitz": bound, **details})
        return out

    def lipschitz_bound(self) -> float:
        """Certified l2 Lipschitz constant of ``x -> logits``: the product over *all* layers."""
        out = 1.0
        for entry in self.lipschitz_report():
            out *= entry["lipschitz"]
        return out

    def regularisers(self) -> dict[str, torch.Tensor]:
        """Contractivity penalties of the ODE blocks (empty for other architectures)."""
        blocks = [m for m in self.modules() if isinstance(m, ContractiveODEBlock)]
        if not blocks:
            return {}
        return {"weight": torch.stack([b.weight_regulariser() for b in blocks]).sum(),
                "jacobian": torch.stack([b.jacobian_regulariser() for b in blocks]).sum()}


def build_classifier(config: ClassifierConfig | None = None, **overrides: Any) -> SequentialClassifier:
    """Build the classifier described by ``config`` (keyword overrides accepted).

    Examples
    --------
    >>> net = build_classifier(arch="gershgorin", widths=(4,), depth=1)
    >>> net(torch.rand(1, 1, 8, 8)).shape
    torch.Size([1, 10])
    """
    cfg = config or ClassifierConfig()
    if overrides:
        cfg = ClassifierConfig.from_dict({**cfg.to_dict(), **overrides})
    constrained = cfg.arch != "resnet"

    def block(width: int) -> nn.Module:
        if cfg.arch == "nonexpansive":
            return GradientStepLayer(width=width, kernel_size=cfg.kernel_size, integrator=cfg.integrator,
                                     negative_slope=cfg.negative_slope, max_substeps=cfg.max_substeps)
        if cfg.arch == "resnet":
            return PlainResidualBlock(width=width, kernel_size=cfg.kernel_size)
        if cfg.arch == "node":
            return ContractiveODEBlock(width=width, kernel_size=cfg.kernel_size, gamma=cfg.node_gamma,
                                       time=cfg.node_time, steps=cfg.node_steps, negative_slope=cfg.negative_slope)
        return GershgorinResidualBlock(width=width, kernel_size=cfg.kernel_size,
                                       lipschitz=cfg.gershgorin_lipschitz, negative_slope=cfg.negative_slope)

    layers: list[nn.Module] = []
    if constrained:
        layers.append(ChannelLift(cfg.in_channels, cfg.widths[0]))
    else:
        layers.append(PlainConv(cfg.in_channels, cfg.widths[0], cfg.kernel_size))
    for s, width in enumerate(cfg.widths):
        if s > 0 and cfg.downsample == "avgpool":
            layers.append(NormedConv1x1(cfg.widths[s - 1], width, constrained=constrained))
            layers.append(ScaledAvgPool(2.0 if constrained else 1.0))
        elif s > 0:
            layers.append(PixelUnshuffle())
            layers.append(NormedConv1x1(4 * cfg.widths[s - 1], width, constrained=constrained))
        layers.extend(block(width) for _ in range(cfg.depth))
    if cfg.pooling == "mean":
        layers.append(ScaledGlobalPool())
        features = cfg.widths[-1]
    else:
        layers.append(Flatten())
        features = cfg.widths[-1] * (cfg.image_size // 2 ** (len(cfg.widths) - 1)) ** 2
    layers.append(NormedLinear(features, cfg.num_classes, constrained=constrained))
    return SequentialClassifier(layers, cfg)
