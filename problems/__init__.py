"""Imaging inverse problems: test images, the :class:`InverseProblem` container, metrics and specs.

Examples
--------
>>> from problems import ProblemSpec
>>> problem = ProblemSpec(size=32).build()   # blurred, noisy cameraman
>>> round(problem.psnr(problem.truth), 1)
inf
"""

from .images import (
    OTHER_IMAGES,
    TEST_SPLIT,
    TRAINING_POOL,
    available_images,
    load_image,
    training_pool_names,
)
from .metrics import psnr, ssim
from .problem import InverseProblem
from .spec import ProblemSpec, bundled_spec_names, bundled_spec_path, load_yaml_mapping

__all__ = [
    "InverseProblem",
    "ProblemSpec",
    "load_image",
    "available_images",
    "training_pool_names",
    "TEST_SPLIT",
    "TRAINING_POOL",
    "OTHER_IMAGES",
    "psnr",
    "ssim",
    "load_yaml_mapping",
    "bundled_spec_names",
    "bundled_spec_path",
]
