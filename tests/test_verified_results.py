"""A run is "converged" only on a finite result whose step-invariant residual passed the test."""

from __future__ import annotations

import pytest
import torch

from operators import Blur, L2Fidelity, gaussian
from pnp.algorithms import FISTA, PGD
from priors.classical import Tikhonov

D = torch.float64


def _problem():
    A = Blur(gaussian(1.2))
    x = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0), dtype=D)
    return A, A(x)


def _gradient_mapping(fid, prior, x, L):
    """Relative norm of x - prox_{g/L}(x - grad f(x) / L) (the test at the default step 1/L)."""
    t = 1.0 / L
    z = prior.prox(x - t * fid.grad(x), t)
    return float((x - z).norm() / x.norm())


@pytest.mark.parametrize("cls, factor", [(PGD, 1e-4), (PGD, 1e-2), (FISTA, 1e-4)])
def test_a_tiny_step_does_not_converge_in_one_iteration(cls, factor):
    A, y = _problem()
    fid, prior = L2Fidelity(A, y), 1e-3 * Tikhonov(gradient=True)
    L = float(fid.lipschitz_grad())
    tol = 1e-5
    res = cls(fid, prior, step=factor / L).run(max_iter=200, tol=tol, progress=False)
    assert res.iterations > 1
    if res.status == "converged":  # then the point really is stationary to the tolerance
        assert _gradient_mapping(fid, prior, res.x, L) <= 10 * tol
    else:
        assert res.status == "max_iter"
    # the default step still converges, to a point that passes the same check
    ok = cls(fid, prior).run(max_iter=2000, tol=tol, progress=False)
    assert ok.status == "converged" and _gradient_mapping(fid, prior, ok.x, L) <= 10 * tol


def test_the_residual_scale_is_one_at_and_above_the_default_step():
    A, y = _problem()
    fid = L2Fidelity(A, y)
    L = float(fid.lipschitz_grad())
    prior = 1e-3 * Tikhonov(gradient=True)
    assert PGD(fid, prior).residual_scale() == 1.0
    assert PGD(fid, prior, step=1.5 / L).residual_scale() == 1.0
    assert PGD(fid, prior, step=0.01 / L).residual_scale() == pytest.approx(100.0)


@pytest.mark.parametrize("arch", ["ridge", "wcrr"])
def test_a_model_file_with_a_nan_weight_gets_no_certificate(tmp_path, capsys, arch):
    from priors.pretrained import certify_main
    from priors.registry import build_model, save_model_file

    model = build_model(arch, {"hidden": 2, "channels": 4, "kernel_size": 3, "knots": 5})
    path = tmp_path / "m.pt"
    save_model_file(model, path, arch=arch)
    record = torch.load(path, weights_only=True)
    record["state_dict"]["mu_raw"][0] = float("nan")  # the certificate stored beside it still claims 1
    torch.save(record, path)
    assert certify_main([str(path), "--no-adversarial"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not finite" in err[0]
    with pytest.raises(ValueError, match="not finite"):
        model.mu_raw.data[0] = float("nan")
        model.certificate()
