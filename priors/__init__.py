"""Priors: classical convex functionals, classical denoisers and the Plug-and-Play prior wrapper."""

import sys
import types

from operators._lazy import lazy_exports

# Public names -> the submodule that defines them, imported on first use (operators/_lazy.py):
# `import priors` itself loads no torch.
_EXPORTS: dict[str, str] = {
    "Certificate": ".base",
    "Prior": ".base",
    "TV": ".classical",
    "Box": ".classical",
    "NonNegative": ".classical",
    "Tikhonov": ".classical",
    "Wavelet": ".classical",
    "BM3DDenoiser": ".denoisers",
    "TVDenoiser": ".denoisers",
    "WaveletDenoiser": ".denoisers",
    "DenoiserPrior": ".pnp_prior",
    "denoiser_at_level": ".pnp_prior",
    "trained_sigma_range": ".pnp_prior",
    "TVProxInfo": ".tv",
    "tv_prox": ".tv",
    "tv_value": ".tv",
    "AveragedResNet": ".averaged",
    "AveragedResNetConfig": ".averaged",
    "GradientStepBlock": ".averaged",
    "composed_alpha": ".averaged",
    "DnCNN": ".baselines",
    "certify": ".certify",
    "empirical_lipschitz": ".certify",
    "load_checkpoint": ".pretrained",
    "load_pretrained": ".pretrained",
    "pretrained_names": ".pretrained",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


class _Package(types.ModuleType):
    """``priors.certify`` names the function :func:`priors.certify.certify`, also after its submodule of the
    same name is imported (the import system binds a submodule on its package: the binding is ignored)."""

    @property
    def certify(self):  # noqa: D401 - a module attribute
        from .certify import certify

        return certify

    @certify.setter
    def certify(self, value) -> None:
        pass


sys.modules[__name__].__class__ = _Package
