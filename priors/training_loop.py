"""The project's one denoiser training loop.

Each step draws a batch of clean patches, adds Gaussian noise at a level drawn uniformly in the
training range, and takes one optimiser step on the MSE (or L1) between the denoised batch and
the clean one.  ``stablepnp train`` (:func:`priors.training.train`: checkpoints, validation,
signals, DDP) and the quick denoisers of the robustness job
(:func:`priors.robustness.prior_eval.train_denoiser`) both run :func:`fit_denoiser`; what differs
between them (logging, checkpoints, when to stop) comes in through its callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["StepOutcome", "NOISE_SAMPLINGS", "noisy_batch", "denoising_loss", "fit_denoiser"]

#: How :func:`noisy_batch` may draw the noise levels.
NOISE_SAMPLINGS = ("uniform", "log")


@dataclass(frozen=True)
class StepOutcome:
    """What one step of :func:`fit_denoiser` leaves for its ``after_step`` callback.

    ``step`` counts the steps taken so far (the one just taken included); ``loss`` and ``output``
    are detached; ``clean`` is the batch on the training device.
    """

    step: int
    loss: Tensor
    output: Tensor
    clean: Tensor


def noisy_batch(clean: Tensor, sigma_min: float, sigma_max: float,
                generator: torch.Generator, sampling: str = "uniform") -> tuple[Tensor, Tensor]:
    """Per-image noise levels in ``[sigma_min, sigma_max]`` and the noisy batch.

    ``sampling="uniform"`` draws the levels uniformly; ``"log"`` draws ``log sigma`` uniformly, so
    every factor of two of the range gets the same share of the batches (PnP runs its denoiser at a
    fraction of the noise level, at the bottom of the range, which a uniform draw rarely visits).

    Both draws come from ``generator`` (levels first, then the noise), so a seeded stream of
    batches is reproducible and resumable.

    Examples
    --------
    >>> sig, noisy = noisy_batch(torch.zeros(3, 1, 4, 4), 0.1, 0.2, torch.Generator().manual_seed(0))
    >>> sig.shape, bool(((sig >= 0.1) & (sig <= 0.2)).all()), noisy.shape
    (torch.Size([3]), True, torch.Size([3, 1, 4, 4]))
    """
    u = torch.rand(clean.shape[0], generator=generator)
    if sampling == "log":
        if not sigma_min > 0:
            raise ValueError("log noise sampling needs sigma_min > 0")
        sig = sigma_min * (sigma_max / sigma_min) ** u
    elif sampling == "uniform":
        sig = sigma_min + (sigma_max - sigma_min) * u
    else:
        raise ValueError(f"noise sampling {sampling!r} unknown; valid: {', '.join(NOISE_SAMPLINGS)}")
    noisy = clean + sig[:, None, None, None] * torch.randn(clean.shape, generator=generator)
    return sig, noisy


def denoising_loss(output: Tensor, clean: Tensor, kind: str = "mse") -> Tensor:
    """Mean squared (``"mse"``) or absolute (``"l1"``) error of the denoised batch."""
    if kind == "mse":
        return F.mse_loss(output, clean)
    if kind == "l1":
        return F.l1_loss(output, clean)
    raise ValueError(f"loss {kind!r} unknown; valid: mse, l1")


def fit_denoiser(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], Tensor],
    *,
    noise_range: tuple[float, float],
    generator: torch.Generator,
    noise_sampling: str = "uniform",
    start: int = 0,
    stop: int,
    loss: str = "mse",
    grad_clip: float = 0.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | None = None,
    on_nonfinite: Callable[[int, float], None] | None = None,
    after_step: Callable[[StepOutcome], bool] | None = None,
) -> int:
    """Train the denoiser ``net(noisy, sigma)`` from step ``start`` up to step ``stop``.

    ``next_batch()`` returns the next clean batch (B, C, H, W), drawn on the CPU; ``generator``
    draws the noise levels in ``noise_range`` (``noise_sampling``: uniform or log) and the noise
    (:func:`noisy_batch`); the batch
    moves to ``device`` (when given) before the forward pass.  ``loss`` is ``"mse"`` or ``"l1"``;
    the gradient norm is clipped to ``grad_clip`` when > 0; ``scheduler`` steps after every
    optimiser step.  ``on_nonfinite(step, loss)`` runs before the loop raises
    :class:`FloatingPointError` on a NaN or infinite loss (it may raise its own error instead);
    ``after_step(outcome)`` runs after every step and ends the loop by returning True.

    Returns
    -------
    int
        The number of steps taken so far (``start`` plus the new ones).

    Examples
    --------
    >>> class Shrink(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a = torch.nn.Parameter(torch.tensor(0.5))
    ...     def forward(self, x, sigma):
    ...         return self.a * x
    >>> net = Shrink()
    >>> gen = torch.Generator().manual_seed(0)
    >>> fit_denoiser(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda: torch.rand(4, 1, 8, 8, generator=gen),
    ...              noise_range=(0.1, 0.2), generator=gen, stop=3)
    3
    """
    step = start
    while step < stop:
        clean = next_batch()  # batches and noise are drawn on the CPU (seeded), then moved
        sig, noisy = noisy_batch(clean, noise_range[0], noise_range[1], generator, noise_sampling)
        if device is not None:
            clean, sig, noisy = clean.to(device), sig.to(device), noisy.to(device)
        out = net(noisy, sig)
        value = denoising_loss(out, clean, loss)
        if not torch.isfinite(value):
            if on_nonfinite is not None:
                on_nonfinite(step, float(value.detach()))
            raise FloatingPointError(f"training loss became {float(value.detach())} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        if after_step is not None and after_step(StepOutcome(step, value.detach(), out.detach(), clean)):
            break
    return step
