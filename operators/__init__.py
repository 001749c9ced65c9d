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

from ._lazy import lazy_exports

# Public names -> the submodule that defines them, imported on first use (operators/_lazy.py):
# `import operators` itself loads no torch.
_EXPORTS: dict[str, str] = {
    "kernels": ".kernels:",
    "DeepinvOperator": ".adapters",
    "FunctionOperator": ".adapters",
    "from_deepinv": ".adapters",
    "to_deepinv": ".adapters",
    "AdjointOperator": ".base",
    "ComposedOperator": ".base",
    "GramOperator": ".base",
    "Identity": ".identity",
    "LinearOperator": ".base",
    "ScaledOperator": ".base",
    "SumOperator": ".base",
    "conjugate_gradient": ".base",
    "BOUNDARIES": ".blur",
    "Blur": ".blur",
    "DataFidelity": ".fidelity",
    "L2Fidelity": ".fidelity",
    "PenalizedFidelity": ".fidelity",
    "PoissonNLL": ".fidelity",
    "KERNEL_SPEC_FORMS": ".kernels",
    "box": ".kernels",
    "disk": ".kernels",
    "gaussian": ".kernels",
    "load_kernel": ".kernels",
    "motion": ".kernels",
    "shake": ".kernels",
    "validate_kernel": ".kernels",
    "parse_kernel_spec": ".kernels",
    "NoiseModel": ".noise",
    "Gaussian": ".noise",
    "Poisson": ".noise",
    "PoissonGaussian": ".noise",
    "Downsampling": ".sampling",
    "Inpainting": ".sampling",
}

__all__ = [
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
    "gaussian",
    "box",
    "disk",
    "motion",
    "shake",
    "load_kernel",
    "parse_kernel_spec",
    "validate_kernel",
    "KERNEL_SPEC_FORMS",
    "NoiseModel",
    "Gaussian",
    "Poisson",
    "PoissonGaussian",
    "DataFidelity",
    "L2Fidelity",
    "PoissonNLL",
    "PenalizedFidelity",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
