"""The architecture registry (priors.registry): an architecture defined outside the package is one
registration away from the trainer's config, the loader, ``stablepnp certify`` and the cache."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from priors._config import ModelConfigMixin
from priors.base import Certificate
from priors.certificate_cache import code_sha256
from priors.pretrained import certify_main, load_checkpoint
from priors.registry import (ARCHITECTURES, MODEL_FORMAT, architecture_of, build_model, read_model_file,
                             register_architecture, save_model_file)
from priors.training import TrainConfig

torch.set_num_threads(1)


@dataclass(frozen=True)
class GainConfig(ModelConfigMixin):
    in_channels: int = 1
    sigma_range: tuple[float, float] = (5 / 255, 55 / 255)


class Gain(torch.nn.Module):
    """``D(x) = g x``: Lipschitz |g|, the smallest denoiser with a certificate."""

    def __init__(self, config: GainConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor = 0.1) -> torch.Tensor:
        return self.gain * x

    def certificate(self, **_: object) -> Certificate:
        return Certificate(lipschitz=abs(float(self.gain.detach())), alpha=None, method="|g|")


@pytest.fixture
def gain_arch(tmp_path, monkeypatch):
    monkeypatch.setenv("STABLEPNP_CACHE_DIR", str(tmp_path / "cache"))
    before = code_sha256()
    register_architecture("gain", GainConfig, Gain)
    yield before
    ARCHITECTURES.pop("gain")


def test_a_registered_architecture_trains_loads_and_certifies(gain_arch, tmp_path, capsys):
    assert TrainConfig.from_dict({"arch": "gain"}).arch == "gain"
    model = build_model("gain", {"sigma_range": [0.02, 0.2]})
    assert architecture_of(model) == "gain"
    path = tmp_path / "gain.pt"
    save_model_file(model, path, arch="gain")
    assert read_model_file(path)["format"] == MODEL_FORMAT
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Gain) and loaded.stored_certificate["lipschitz"] == 0.5
    assert certify_main([str(path), "--no-adversarial"]) == 0
    assert "0.500000" in capsys.readouterr().out
    assert code_sha256() != gain_arch  # the new architecture's source is part of the cache key


def test_edited_weights_of_a_registered_architecture_are_refused(gain_arch, tmp_path):
    path = tmp_path / "gain.pt"
    save_model_file(build_model("gain", {}), path, arch="gain")
    rec = torch.load(path, weights_only=True)
    rec["state_dict"]["gain"] = torch.tensor(2.0)
    torch.save(rec, path)
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(path)


def test_a_taken_name_is_refused_and_unknown_names_list_the_valid_ones(gain_arch):
    register_architecture("gain", GainConfig, Gain)  # the same entry again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("averaged", GainConfig, Gain)
    with pytest.raises(ValueError, match="valid: averaged, dncnn, ridge, ridge_stack, wcrr, gain"):
        build_model("nope", {})
    with pytest.raises(ValueError, match="not a registered architecture"):
        architecture_of(torch.nn.Identity())
