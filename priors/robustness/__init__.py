"""Robustness evaluation: certified and empirical robustness of Lipschitz classifiers and of priors.

Modules
-------
models      classifiers with certified l2 Lipschitz bounds (gradient-step / Sherry et al., ResNet
            baseline, contractive conv neural ODE / Zakwan et al., Gershgorin ResNet / Juston et al.)
certified   certified accuracy from the Tsuzuku et al. margin ``> sqrt(2) L eps``
attacks     PGD (l2, l-inf; random start, restarts), FGSM, corruptions, accuracy curves and AUC
data        offline Fashion-MNIST idx reader, committed subset, CIFAR-10 via torchvision
prior_eval  worst-case amplification of denoisers and PnP maps next to their certified bounds
run         the ``stablepnp robustness CONFIG.yaml`` job (:func:`priors.robustness.run.main`)
"""

from .attacks import accuracy, accuracy_curve, curve_auc, fgsm, gaussian_noise, pgd, robust_accuracy, salt_and_pepper
from .certified import certified_accuracy, certified_curve, certified_radius, margins
from .data import ImageDataset, load_dataset, load_fashion_mnist, load_npz_subset
from .models import ARCHITECTURES, ClassifierConfig, SequentialClassifier, build_classifier
from .prior_eval import amplification_pgd, amplification_random, pnp_lipschitz_bound, pnp_map

__all__ = [
    "ARCHITECTURES",
    "ClassifierConfig",
    "SequentialClassifier",
    "build_classifier",
    "margins",
    "certified_radius",
    "certified_accuracy",
    "certified_curve",
    "pgd",
    "fgsm",
    "accuracy",
    "robust_accuracy",
    "gaussian_noise",
    "salt_and_pepper",
    "accuracy_curve",
    "curve_auc",
    "ImageDataset",
    "load_dataset",
    "load_fashion_mnist",
    "load_npz_subset",
    "amplification_pgd",
    "amplification_random",
    "pnp_map",
    "pnp_lipschitz_bound",
]
