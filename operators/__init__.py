"""Forward operators, noise models and data-fidelity terms for imaging inverse problems.

Tensors are ``(B, C, H, W)``, float32 by default; everything also works in float64.

>>> import torch
>>> from operators import Blur, Gaussian, parse_kernel_spec
>>> A = Blur(parse_kernel_spec("gaussian:2.0"), boundary="reflect")
>>> x = torch.rand(1, 1, 64, 64)
>>> y = Gaussian(0.01).sample(A(x), generator=torch.Generator().manual_seed(0))
>>> f = Gaussian(0.01).fidelity(A, y)
>>> f.value(x).shape
torch.Size([1])
"""

from . import kernels
from .adapters import DeepinvOperator, FunctionOperator, from_deepinv, to_deepinv
from .base import (
    AdjointOperator,
    ComposedOperator,
    GramOperator,
    Identity,
    LinearOperator,
    ScaledOperator,
    SumOperator,
    conjugate_gradient,
)
from .blur import BOUNDARIES, Blur
from .fidelity import DataFidelity, L2Fidelity, PenalizedFidelity, PoissonNLL
from .kernels import (
    KERNEL_SPEC_FORMS,
    box,
    disk,
    gaussian,
    load_kernel,
    motion,
    parse_kernel_spec,
    shake,
    validate_kernel,
)
from .noise import Gaussian, NoiseModel, Poisson, PoissonGaussian
from .sampling import Downsampling, Inpainting

__all__ = [
    # operators
    "LinearOperator",
    "Blur",
    "BOUNDARIES",
    "Downsampling",
    "Inpainting",
    "Identity",
    "FunctionOperator",
    "DeepinvOperator",
    "from_deepinv",
    "to_deepinv",
    "AdjointOperator",
    "ComposedOperator",
    "SumOperator",
    "ScaledOperator",
    "GramOperator",
    "conjugate_gradient",
    # kernels
    *kernels.__all__,
    # noise and fidelity
    "NoiseModel",
    "Gaussian",
    "Poisson",
    "PoissonGaussian",
    "DataFidelity",
    "L2Fidelity",
    "PoissonNLL",
    "PenalizedFidelity",
]
