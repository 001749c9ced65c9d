"""Adversarial attacks (PGD in l2 and l-infinity, FGSM), noise corruptions and accuracy curves.

The attacks maximise the cross-entropy of ``model(x + delta)`` over ``||delta|| <= eps`` with
``x + delta`` kept in the pixel box ``clip`` (Madry et al. 2018).  Steps:

* l-infinity: ``x <- Proj(x + alpha sign(grad))``, projection = clamp of ``delta`` to
  ``[-eps, eps]`` then of ``x + delta`` to the box;
* l2: ``x <- Proj(x + alpha grad / ||grad||)``, projection = radial scaling of ``delta`` to the
  ball then clamp to the box (as torchattacks does, so the two agree without random start);
* random start: uniform in the l-infinity ball, or uniform in the l2 ball (direction Gaussian,
  radius ``eps u^{1/d}``);
* restarts: the attack is repeated and, per sample, an adversarial example that fools the model is
  kept (otherwise the one with the largest loss).

FGSM is one l-infinity step of size eps (Goodfellow et al. 2015); its l2 analogue (FGM) one
normalised-gradient step.  Corruptions follow Zakwan et al.: additive Gaussian noise and
salt-and-pepper noise, both clipped to [0, 1].
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "pgd",
    "fgsm",
    "accuracy",
    "robust_accuracy",
    "gaussian_noise",
    "salt_and_pepper",
    "accuracy_curve",
    "curve_auc",
]

Model = Callable[[torch.Tensor], torch.Tensor]


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _project(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str, clip: tuple[float, float] | None) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        factor = torch.clamp(eps / (_per_sample_norm(delta) + 1e-10), max=1.0)
        delta = delta * factor
    out = x + delta
    return out.clamp(*clip) if clip is not None else out


def _random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        return (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1).to(x.device) * eps
    d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    d = d / _per_sample_norm(d)
    r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, dtype=x.dtype).to(x.device)
    return d * eps * r ** (1.0 / x[0].numel())


def _check_norm(norm: str) -> None:
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")


def pgd(model: Model, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "l2", steps: int = 10,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        clip: tuple[float, float] | None = (0.0, 1.0), generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient ascent on the cross-entropy within the ``norm`` ball of radius ``eps``.

    Parameters
    ----------
    model : callable
        ``x -> logits``; called in whatever mode it is in (put it in eval mode first).
    x, y : Tensor
        Images (B, C, H, W) and labels (B,).
    eps : float
        Radius of the ball.
    norm : {"l2", "linf"}
        Threat model.
    steps : int
        Gradient steps per restart.
    step_size : float, optional
        ``alpha``; default ``2.5 eps / steps``.
    random_start : bool
        Start uniformly in the ball (else at x).
    restarts : int
        Number of independent runs; per sample the worst case is kept.
    clip : (float, float) or None
        Pixel box (None: unconstrained).

    Returns
    -------
    Tensor
        Adversarial images, detached.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])
    >>> ((pgd(model, x, y, eps=0.1) - x).flatten(1).norm(dim=1) <= 0.1 + 1e-6).all().item()
    True
    """
    _check_norm(norm)
    if eps < 0 or steps < 0 or restarts < 1:
        raise ValueError(f"pgd needs eps >= 0, steps >= 0, restarts >= 1; got {eps}, {steps}, {restarts}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), dtype=x.dtype, device=x.device)
    best_fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        x_adv = x.clone()
        if random_start:
            x_adv = _project(x, x + _random_start(x, eps, norm, generator), eps, norm, clip)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                if norm == "linf":
                    x_adv = x_adv + alpha * grad.sign()
                else:
                    x_adv = x_adv + alpha * grad / (_per_sample_norm(grad) + 1e-10)
                x_adv = _project(x, x_adv, eps, norm, clip)
        with torch.no_grad():
            logits = model(x_adv)
            loss = F.cross_entropy(logits, y, reduction="none")
            fooled = logits.argmax(1) != y
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best[better] = x_adv[better]
            best_loss = torch.where(better, loss, best_loss)
            best_fooled |= fooled
    return best.detach()


def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
         clip: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Fast gradient sign method (``linf``) or fast gradient method (``l2``, normalised gradient)."""
    _check_norm(norm)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    with torch.no_grad():
        step = grad.sign() if norm == "linf" else grad / (_per_sample_norm(grad) + 1e-10)
        out = x + eps * step
        return (out.clamp(*clip) if clip is not None else out).detach()


@torch.no_grad()
def accuracy(model: Model, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy, batched."""
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(x.shape[0], 1)


def robust_accuracy(model: Model, x: torch.Tensor, y: torch.Tensor, *, attack: str = "pgd", eps: float,
                    norm: str = "l2", batch_size: int = 250, **kwargs) -> float:
    """Accuracy under ``attack`` ("pgd" or "fgsm") at radius ``eps``, batched."""
    if attack not in ("pgd", "fgsm"):
        raise ValueError(f"attack must be 'pgd' or 'fgsm', got {attack!r}")
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = pgd(model, xb, yb, eps=eps, norm=norm, **kwargs) if attack == "pgd" else fgsm(model, xb, yb, eps=eps, norm=norm, **kwargs)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / max(x.shape[0], 1)


def gaussian_noise(x: torch.Tensor, std: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + std n, 0, 1)`` with standard Gaussian n.

    Examples
    --------
    >>> gaussian_noise(torch.zeros(1, 1, 2, 2), 0.0).sum().item()
    0.0
    """
    n = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + std * n).clamp(0.0, 1.0)


def salt_and_pepper(x: torch.Tensor, amount: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set a fraction ``amount`` of pixels to 0 or 1 (each with probability 1/2)."""
    if not 0 <= amount <= 1:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    s = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    out = x.clone()
    hit = u < amount
    out[hit] = (s[hit] < 0.5).to(x.dtype)
    return out


def accuracy_curve(evaluate: Callable[[float], float], eps: Sequence[float]) -> list[float]:
    """``[evaluate(e) for e in eps]`` (e.g. ``lambda e: robust_accuracy(model, x, y, eps=e)``)."""
    return [float(evaluate(float(e))) for e in eps]


def curve_auc(eps: Sequence[float], acc: Sequence[float]) -> float:
    """Normalised area under an accuracy-vs-eps curve: trapezoid integral / (eps_max - eps_min), in [0, 1].

    Examples
    --------
    >>> curve_auc([0.0, 1.0], [1.0, 0.0])
    0.5
    """
    if len(eps) != len(acc) or len(eps) < 2:
        raise ValueError("curve_auc needs at least two (eps, accuracy) points of equal length")
    e = torch.as_tensor(list(eps), dtype=torch.float64)
    a = torch.as_tensor(list(acc), dtype=torch.float64)
    if (e[1:] <= e[:-1]).any():
        raise ValueError("eps must be strictly increasing")
    return float(torch.trapezoid(a, e) / (e[-1] - e[0]))
