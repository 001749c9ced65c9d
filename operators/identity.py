"""The identity operator (denoising), a leaf :class:`operators.base.LinearOperator`."""

from __future__ import annotations

from torch import Tensor

from .base import LinearOperator
from .linalg import Shape

__all__ = ["Identity"]


class Identity(LinearOperator):
    """The identity operator (denoising problems).

    Parameters
    ----------
    in_shape : tuple of int, optional
        Fixed ``(B, C, H, W)`` shape, if any.

    Examples
    --------
    >>> import torch
    >>> from operators import Identity
    >>> I = Identity()
    >>> x = torch.rand(1, 3, 4, 4)
    >>> bool(torch.equal(I(x), x)), I.norm()
    (True, 1.0)
    """

    has_closed_form_normal = True
    has_closed_form_normal_adjoint = True
    shape_preserving = True
    verified_by_tests = True

    def __init__(self, *, in_shape: Shape | None = None) -> None:
        super().__init__(in_shape=in_shape, out_shape=in_shape)

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y

    def _gram_forward(self, x: Tensor) -> Tensor:
        return x

    def gram(self) -> LinearOperator:
        return self

    def _exact_norm(self, shape, dtype):
        return 1.0

    def _closed_normal(self, b, rho):
        return b / (1.0 + rho)

    _closed_normal_adjoint = _closed_normal
