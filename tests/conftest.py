"""Shared pytest fixtures: float64 helper and a seeded random generator."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def f64():
    """Cast helper: ``f64(t)`` returns ``t`` as float64 (tensors, arrays or numbers)."""

    def cast(t):
        return torch.as_tensor(t).to(torch.float64)

    return cast


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with 0 (a fresh one per test)."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _no_certificate_cache(tmp_path_factory):
    """Model loading recomputes the certificate in every test (priors.certificate_cache is off, and
    would write under a temporary folder): tests that simulate another machine's certifier rely on it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STABLEPNP_CERTIFICATE_CACHE", "0")
    mp.setenv("STABLEPNP_CACHE_DIR", str(tmp_path_factory.mktemp("certificate_cache")))
    yield
    mp.undo()
