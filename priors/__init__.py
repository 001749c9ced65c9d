"""Priors: classical convex functionals, classical denoisers and the Plug-and-Play prior wrapper."""

from .base import Certificate, Prior
from .classical import TV, Box, NonNegative, Tikhonov, Wavelet
from .denoisers import BM3DDenoiser, TVDenoiser, WaveletDenoiser
from .pnp_prior import DenoiserPrior, denoiser_at_level, trained_sigma_range
from .tv import TVProxInfo, tv_prox, tv_value

__all__ = [
    "Certificate",
    "Prior",
    "TV",
    "Wavelet",
    "Tikhonov",
    "Box",
    "NonNegative",
    "TVDenoiser",
    "WaveletDenoiser",
    "BM3DDenoiser",
    "DenoiserPrior",
    "denoiser_at_level",
    "trained_sigma_range",
    "tv_prox",
    "tv_value",
    "TVProxInfo",
]

# Learned part: the averaged gradient-step network, its certificate, training and shipped weights.
from .averaged import AveragedResNet, AveragedResNetConfig, GradientStepBlock, composed_alpha  # noqa: E402
from .baselines import DnCNN  # noqa: E402
from .certify import certify, empirical_lipschitz  # noqa: E402
from .pretrained import load_checkpoint, load_pretrained, pretrained_names  # noqa: E402

__all__ += [
    "AveragedResNet",
    "AveragedResNetConfig",
    "GradientStepBlock",
    "composed_alpha",
    "DnCNN",
    "certify",
    "empirical_lipschitz",
    "load_checkpoint",
    "load_pretrained",
    "pretrained_names",
]
