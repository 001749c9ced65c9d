"""The bundled problem specs (problems/specs/*.yaml) run through ``stablepnp solve``, by path and by name."""

from __future__ import annotations

import json

import pytest

from pnp.cli import main
from pnp.spec import SolveConfig, read_solve_yaml
from problems import bundled_spec_names, bundled_spec_path


@pytest.mark.parametrize("name", bundled_spec_names())
def test_bundled_spec_solves_by_name_and_path(name, tmp_path):
    spec = read_solve_yaml(name)[1]["problem"]
    by_path = SolveConfig.from_yaml(bundled_spec_path(name))
    assert by_path.problem.operator == spec.get("operator", "blur")
    assert SolveConfig.from_yaml(name) == by_path
    record = tmp_path / "r.json"
    code = main(["solve", name, "--size", "32", "--max-iter", "5", "--quiet", "--no-figure", "--out",
                 str(tmp_path / "o"), "--json", str(record), "--threads", "1"])
    assert code == 0
    saved = json.loads(record.read_text())
    assert saved["problem"]["operator"] == by_path.problem.operator
    assert saved["problem"]["noise_model"] == by_path.problem.noise_model


def test_spec_with_unknown_problem_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("image: camera\nkernal: gaussian:2\n")
    with pytest.raises(ValueError, match="kernal"):
        SolveConfig.from_yaml(bad)
