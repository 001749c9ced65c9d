"""An imaging inverse problem ``y = noise(A x)``: operator, noise model, data, optional truth."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import metrics

if TYPE_CHECKING:  # imported for annotations only: problems must import without operators loaded
    from operators.base import LinearOperator
    from operators.fidelity import DataFidelity

__all__ = ["InverseProblem"]


def _check_image(t: Any, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"InverseProblem: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 4:
        raise ValueError(f"InverseProblem: {name} must have shape (B, C, H, W), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"InverseProblem: {name} must be a floating-point tensor, got {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"InverseProblem: {name} contains NaN or Inf values")
    return t


class InverseProblem:
    """Recover ``x`` from ``y = noise(A x)``.

    Bundles the forward operator ``A``, the noise model, the observation ``y`` and, when known,
    the ground truth. The data-fidelity functional matching the noise model (``½‖Ax − y‖²``
    for Gaussian noise, the Poisson negative log-likelihood otherwise) is built on first use and
    cached in :attr:`fidelity`.

    Parameters
    ----------
    operator : operators.LinearOperator
        Forward operator ``A``.
    noise : noise model from :mod:`operators.noise`
        Anything with ``fidelity(operator, y)`` (and ``sample(z, generator=...)`` for
        :meth:`simulate`).
    y : Tensor
        Observation, shape (B, C, H', W'), finite.
    truth : Tensor, optional
        Ground truth ``x``, shape (B, C, H, W), finite; ``A(truth)`` must have the shape of ``y``.

    Raises
    ------
    TypeError, ValueError
        Non-tensor, non-4-D or non-finite ``y``/``truth``, shape mismatch, or a noise model
        without ``fidelity``.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, Gaussian, kernels
    >>> from problems import InverseProblem, load_image
    >>> truth = load_image("camera", size=32)
    >>> problem = InverseProblem.simulate(truth, Blur(kernels.gaussian(1.0)), Gaussian(0.01), seed=0)
    >>> problem.y.shape
    torch.Size([1, 1, 32, 32])
    >>> problem.psnr(problem.x0()) > 20
    True
    """

    def __init__(
        self,
        operator: LinearOperator,
        noise: Any,
        y: Tensor,
        *,
        truth: Tensor | None = None,
    ) -> None:
        if not callable(getattr(operator, "adjoint", None)) or not callable(operator):
            raise TypeError(
                f"InverseProblem: operator must be a LinearOperator, got {type(operator).__name__}"
            )
        if not callable(getattr(noise, "fidelity", None)):
            raise TypeError(
                "InverseProblem: noise must be a noise model with fidelity(operator, y) "
                f"(e.g. operators.Gaussian), got {type(noise).__name__}"
            )
        self._operator = operator
        self._noise = noise
        self._y = _check_image(y, "y")
        self._truth = None if truth is None else _check_image(truth, "truth")
        if self._truth is not None:
            with torch.no_grad():
                shape = tuple(operator(self._truth).shape)
            if shape != tuple(self._y.shape):
                raise ValueError(
                    f"InverseProblem: A(truth) has shape {shape} but y has shape "
                    f"{tuple(self._y.shape)}; pass the observation made by this operator"
                )

    # -- read-only data ----------------------------------------------------------------------
    @property
    def operator(self) -> LinearOperator:
        """The forward operator ``A``."""
        return self._operator

    @property
    def noise(self) -> Any:
        """The noise model."""
        return self._noise

    @property
    def y(self) -> Tensor:
        """The observation."""
        return self._y

    @property
    def truth(self) -> Tensor | None:
        """The ground truth, or ``None`` when unknown."""
        return self._truth

    @cached_property
    def fidelity(self) -> DataFidelity:
        """Data-fidelity term ``noise.fidelity(operator, y)``, built once and cached."""
        return self._noise.fidelity(self._operator, self._y)

    # -- metrics -----------------------------------------------------------------------------
    def _require_truth(self, what: str) -> Tensor:
        if self._truth is None:
            raise ValueError(
                f"InverseProblem.{what} needs the ground truth; build the problem with truth=..."
            )
        return self._truth

    def psnr(self, x: Tensor) -> float:
        """PSNR (dB, peak 1.0) of ``x`` against the truth, averaged over the batch.

        For the observation's own score use ``problem.psnr(problem.x0())``.
        See :func:`problems.metrics.psnr` for per-image values.
        """
        return float(metrics.psnr(x, self._require_truth("psnr")).mean())

    def ssim(self, x: Tensor) -> float:
        """SSIM (data range 1.0) of ``x`` against the truth, averaged over the batch.

        See :func:`problems.metrics.ssim` for the window settings and per-image values.
        """
        return float(metrics.ssim(x, self._require_truth("ssim")).mean())

    # -- initialisation ----------------------------------------------------------------------
    def x0(self) -> Tensor:
        """A starting point in the image domain.

        When ``A`` maps images to images of the same shape (blur, inpainting, denoising) this
        is a copy of ``y``. Otherwise (e.g. downsampling) it is ``c Aᵀy`` with the scalar ``c``
        (one per batch element) that best fits the data, ``c = <AAᵀy, y> / ‖AAᵀy‖²``; this
        undoes the brightness change of a bare adjoint (a zero-filling upsampler darkens by
        the factor², an averaging one by its normalisation) without assuming a particular
        operator.
        """
        y = self._y
        with torch.no_grad():
            z = self._operator.adjoint(y)
            if z.shape == y.shape:
                return y.clone()
            az = self._operator(z)
            num = (az * y).flatten(1).sum(dim=1)
            den = (az * az).flatten(1).sum(dim=1)
            scale = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)
            return z * scale.view(-1, 1, 1, 1)

    @classmethod
    def simulate(
        cls,
        truth: Tensor,
        operator: LinearOperator,
        noise: Any,
        *,
        seed: int = 0,
    ) -> InverseProblem:
        """Simulate ``y = noise.sample(A truth)`` reproducibly and return the problem.

        Parameters
        ----------
        truth : Tensor
            Ground truth (B, C, H, W), finite.
        operator : operators.LinearOperator
            Forward operator.
        noise : noise model
            Must provide ``sample(z, *, generator=...)`` and ``fidelity(operator, y)``.
        seed : int
            Seed of the ``torch.Generator`` (on ``truth``'s device) used for the noise; the
            same seed gives the same ``y``.

        Returns
        -------
        InverseProblem
            With ``truth`` attached.
        """
        truth = _check_image(truth, "truth")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"InverseProblem.simulate: seed must be an int, got {seed!r}")
        if not callable(getattr(noise, "sample", None)):
            raise TypeError(
                "InverseProblem.simulate: noise must provide sample(z, *, generator=...), "
                f"got {type(noise).__name__}"
            )
        generator = torch.Generator(device=truth.device)
        generator.manual_seed(seed)
        with torch.no_grad():
            y = noise.sample(operator(truth.detach()), generator=generator)
        return cls(operator, noise, y, truth=truth.detach())

    def __repr__(self) -> str:
        truth = "none" if self._truth is None else str(tuple(self._truth.shape))
        return (
            f"InverseProblem(operator={type(self._operator).__name__}, "
            f"noise={self._noise!r}, y={tuple(self._y.shape)}, truth={truth})"
        )
