"""Colour with a grey certified prior: the channel-wise map keeps the grey certificate."""

from __future__ import annotations

import json

import torch

from pnp.cli import main
from priors.certify import empirical_lipschitz
from priors.channelwise import ChannelwiseDenoiser
from priors.pretrained import load_pretrained


def test_channelwise_shipped_denoiser_keeps_its_certificate_against_the_search():
    grey = load_pretrained("averaged_gray")
    den = ChannelwiseDenoiser(grey, channels=3)
    cert, base = den.certificate(), grey.certificate()
    assert cert.alpha == base.alpha and cert.lipschitz == base.lipschitz
    assert "each of 3 channels" in cert.method
    emp = empirical_lipschitz(den, sigmas=(5 / 255, 55 / 255), shape=(1, 3, 16, 16), power_iters=5, ascent_steps=5)
    assert emp["max"] <= cert.lipschitz * (1 + 1e-6)
    # averagedness on the stacked image: N = (D - (1 - a) I) / a is nonexpansive
    a = cert.alpha
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        nx, ny = (den(x, 0.05) - (1 - a) * x) / a, (den(y, 0.05) - (1 - a) * y) / a
    ratio = (nx - ny).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 1 + 1e-4


def test_channelwise_equals_the_grey_model_on_each_channel():
    grey = load_pretrained("averaged_gray")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = ChannelwiseDenoiser(grey, channels=3)(x, 0.1)
        ref = torch.stack([grey(x[:, c : c + 1], 0.1)[:, 0] for c in range(3)], dim=1)
    assert torch.allclose(out, ref, atol=1e-6)


def test_solve_color_with_the_default_prior_runs_with_its_guarantee(tmp_path):
    rec = tmp_path / "r.json"
    rc = main(["solve", "--color", "--size", "24", "--max-iter", "3", "--no-figure", "-q", "--json", str(rec)])
    assert rc == 0
    data = json.loads(rec.read_text())
    text = json.dumps(data)
    assert "guaranteed" in text
