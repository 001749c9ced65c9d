"""Robustness evaluation: certified and empirical robustness of Lipschitz classifiers and of priors.

Modules
-------
models      classifiers with certified l2 Lipschitz bounds (gradient-step / Sherry et al., ResNet
            baseline, contractive conv neural ODE / Zakwan et al., Gershgorin ResNet / Juston et al.),
            built from the layers of ``layers`` and the residual blocks of ``blocks``
certified   certified accuracy from the Tsuzuku et al. margin ``> sqrt(2) L eps``
attacks     PGD (l2, l-inf; random start, restarts), FGSM, corruptions, accuracy curves and AUC
data        offline Fashion-MNIST idx reader, committed subset, CIFAR-10 via torchvision
prior_eval  worst-case amplification of denoisers and PnP maps next to their certified bounds
config      the job's strict YAML configuration (frozen specs)
reports     the job's Markdown / CSV tables and accuracy-versus-radius plots
run         the ``stablepnp robustness CONFIG.yaml`` job (:func:`priors.robustness.run.main`; the CLI
            hands it the solver's PnP map and the prior registry from :mod:`pnp.robustness`)
"""

from . import attacks
from .attacks import accuracy, accuracy_curve, curve_auc, fgsm, gaussian_noise, pgd, robust_accuracy, salt_and_pepper
from .certified import certified_accuracy, certified_curve, certified_radius, margins
from .data import ImageDataset, load_dataset, load_fashion_mnist, load_npz_subset
from .models import ARCHITECTURES, ClassifierConfig, SequentialClassifier, build_classifier
from .prior_eval import EvalDenoiser, amplification_pgd, amplification_random, pnp_lipschitz_bound

__all__ = [
    "ARCHITECTURES",
    "ClassifierConfig",
    "SequentialClassifier",
    "build_classifier",
    "margins",
    "certified_radius",
    "certified_accuracy",
    "certified_curve",
    *attacks.__all__,
    "ImageDataset",
    "load_dataset",
    "load_fashion_mnist",
    "load_npz_subset",
    "amplification_pgd",
    "amplification_random",
    "EvalDenoiser",
    "pnp_lipschitz_bound",
]
