"""The on-disk certificate cache of model loading (priors.certificate_cache)."""

from __future__ import annotations

import json

import pytest
import torch

import priors.pretrained as pretrained
from priors import AveragedResNet
from priors.certificate_cache import CACHE_FORMAT, certificate_for_file
from priors.training import save_model_file

torch.set_num_threads(1)


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STABLEPNP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STABLEPNP_CERTIFICATE_CACHE", "1")  # the suite turns it off (conftest)
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model_file(AveragedResNet(width=4, depth=1), path, arch="averaged")
    return path


@pytest.fixture
def count_certify(monkeypatch):
    calls = []
    original = pretrained.certificate_dict

    def counting(model):
        calls.append(1)
        return original(model)

    monkeypatch.setattr(pretrained, "certificate_dict", counting)
    return calls


def test_second_load_reuses_the_certificate_and_seeds_the_model(model_file, count_certify):
    first = pretrained.load_checkpoint(model_file)
    second = pretrained.load_checkpoint(model_file)
    assert len(count_certify) == 1
    assert second.certificate().lipschitz == first.certificate().lipschitz
    assert second.certificate().alpha == first.certificate().alpha
    assert len(list((model_file.parent / "cache").glob("*.json"))) == 1


def test_an_entry_whose_hash_differs_is_never_trusted(model_file, count_certify):
    pretrained.load_checkpoint(model_file)
    entry = next((model_file.parent / "cache").glob("*.json"))
    data = json.loads(entry.read_text())
    assert data["format"] == CACHE_FORMAT
    data["file_sha256"] = "0" * 64  # an entry claiming other bytes
    data["certificate"]["lipschitz"] = 0.5
    entry.write_text(json.dumps(data))
    model = pretrained.load_checkpoint(model_file)
    assert len(count_certify) == 2 and model.certificate().lipschitz != 0.5
    assert json.loads(entry.read_text())["file_sha256"] != "0" * 64  # rewritten


def test_edited_weights_get_a_new_key_and_are_still_refused(model_file, count_certify):
    pretrained.load_checkpoint(model_file)
    rec = torch.load(model_file, weights_only=True)
    for k, v in rec["state_dict"].items():
        if v.is_floating_point() and v.ndim == 4:
            rec["state_dict"][k] = v * 3.0  # enlarges the convolution norms
    torch.save(rec, model_file)
    with pytest.raises(ValueError, match="does not match its weights"):
        pretrained.load_checkpoint(model_file)
    assert len(count_certify) == 2


def test_cache_switch(model_file, count_certify, monkeypatch):
    monkeypatch.setenv("STABLEPNP_CERTIFICATE_CACHE", "0")
    pretrained.load_checkpoint(model_file)
    pretrained.load_checkpoint(model_file)
    assert len(count_certify) == 2 and not (model_file.parent / "cache").exists()


def test_unwritable_cache_only_costs_recomputation(tmp_path):
    f = tmp_path / "m.pt"
    f.write_bytes(b"x")
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("")
    calls = []
    for _ in range(2):
        cert, hit = certificate_for_file(f, lambda: calls.append(1) or {"lipschitz": 1.0}, cache_dir=blocker / "sub")
        assert not hit and cert == {"lipschitz": 1.0}
    assert len(calls) == 2
