"""Imaging inverse problems: test images, the :class:`InverseProblem` container, metrics and specs.

Examples
--------
>>> from problems import ProblemSpec
>>> problem = ProblemSpec(size=32).build()   # blurred, noisy cameraman
>>> round(problem.psnr(problem.truth), 1)
inf
"""

from operators._lazy import lazy_exports

# Public names -> the submodule that defines them, imported on first use (operators/_lazy.py):
# `import problems` itself loads no torch.
_EXPORTS: dict[str, str] = {
    "OTHER_IMAGES": ".images",
    "TEST_SPLIT": ".images",
    "TRAINING_POOL": ".images",
    "available_images": ".images",
    "load_image": ".images",
    "load_observation": ".images",
    "training_pool_names": ".images",
    "NoiseEstimate": ".noise_estimate",
    "estimate_noise": ".noise_estimate",
    "psnr": ".metrics",
    "ssim": ".metrics",
    "InverseProblem": ".problem",
    "ProblemSpec": ".spec",
    "bundled_spec_names": ".spec",
    "bundled_spec_path": ".spec",
    "load_yaml_mapping": ".spec",
}

__all__ = [
    "InverseProblem",
    "ProblemSpec",
    "load_image",
    "load_observation",
    "estimate_noise",
    "NoiseEstimate",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
