"""One strict-config mechanism (problems.config) behind every YAML config of the project.

Each config type refuses an unknown key with one line that names the key and lists the valid
ones, and a value of the wrong type where types are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml

import problems.spec
from pnp.compare_config import CompareConfig, PriorEntry
from pnp.spec import OutputSpec, SolveConfig, SolverSpec
from priors.robustness.config import DataSpec, RobustnessConfig, load_config
from priors.training import OptimConfig, TrainConfig
from problems import ProblemSpec
from problems.config import (StrictLoader, as_choice, as_float, as_int, check_field_types, check_keys,
                             from_mapping, load_yaml_mapping)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "priors" / "robustness" / "configs" / "tiny.yaml"


def _names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def _refused(call, message: str) -> None:
    """``call()`` raises a one-line ValueError whose text is exactly ``message``."""
    with pytest.raises(ValueError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text
    assert text == message


# ---------------------------------------------------------------------------- unknown keys


def test_problem_spec_refuses_an_unknown_key():
    valid = ", ".join(_names(ProblemSpec))
    _refused(lambda: ProblemSpec.from_dict({"image": "camera", "colour": 1}),
             f"unknown key 'colour' in problem spec; valid keys: {valid}")
    _refused(lambda: ProblemSpec.from_dict({"imgae": "x"}, where="section 'problem' of 'run.yaml'"),
             f"unknown key 'imgae' in section 'problem' of 'run.yaml'; valid keys: {valid}")


def test_solve_spec_refuses_an_unknown_key_at_every_level():
    _refused(lambda: SolverSpec.from_dict({"max_iters": 3}),
             f"unknown key 'max_iters' in solver spec; valid keys: {', '.join(_names(SolverSpec))}")
    _refused(lambda: SolveConfig.from_dict({"problme": {}}),
             "unknown key 'problme' in the top level of solve config; valid keys: problem, solver, output")
    _refused(lambda: SolveConfig.from_dict({"output": {"dri": "out"}}),
             "unknown key 'dri' in section 'output' of solve config; valid keys: "
             + ", ".join(_names(OutputSpec)))


def test_compare_config_refuses_an_unknown_key():
    _refused(lambda: CompareConfig.from_dict({"priors": ["tv"], "colour": True}),
             f"unknown key 'colour' in compare config; valid keys: {', '.join(_names(CompareConfig))}")
    _refused(lambda: CompareConfig.from_dict({"priors": [{"prior": "tv", "lamda": 1}]}),
             f"unknown key 'lamda' in priors[0]; valid keys: {', '.join(_names(PriorEntry))}")


def test_training_config_refuses_an_unknown_key_listing_sorted_keys():
    _refused(lambda: TrainConfig.from_dict({"optim": {"lrr": 1}}),
             f"unknown key 'lrr' in training config section 'optim'; valid keys: {', '.join(sorted(_names(OptimConfig)))}")
    _refused(lambda: TrainConfig.from_dict({"optimizer": {}}),
             "unknown key 'optimizer' in training config section 'top level'; valid keys: "
             + ", ".join(sorted(_names(TrainConfig))))
    assert TrainConfig.from_dict({"data": None}).data == TrainConfig().data  # an empty section is allowed


def _robustness(tmp_path, edit) -> RobustnessConfig:
    raw = yaml.safe_load(TINY.read_text())
    edit(raw)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_robustness_config_refuses_an_unknown_key(tmp_path):
    assert _robustness(tmp_path, lambda raw: None).data.dataset == "fashion_mnist_subset"
    _refused(lambda: _robustness(tmp_path, lambda raw: raw.update(sede=1)),
             f"unknown key 'sede' in config; valid keys: {', '.join(sorted(_names(RobustnessConfig)))}")
    _refused(lambda: _robustness(tmp_path, lambda raw: raw["data"].update(bogus=1)),
             f"unknown key 'bogus' in data; valid keys: {', '.join(_names(DataSpec))}")
    _refused(lambda: _robustness(tmp_path, lambda raw: raw["models"][0].update(nmae="x")),
             "unknown key 'nmae' in models[0]; valid keys: checkpoint, model, name, train")


# ---------------------------------------------------------------------------- wrong types


def test_robustness_config_checks_types_against_the_hints(tmp_path):
    _refused(lambda: _robustness(tmp_path, lambda raw: raw["data"].update(train_limit="many")),
             "data.train_limit must be int or null, got 'many'")
    _refused(lambda: _robustness(tmp_path, lambda raw: raw.update(seed="zero")),
             "config.seed must be int, got 'zero'")
    _refused(lambda: _robustness(tmp_path, lambda raw: raw["evaluation"].update(eps=["a"])),
             "evaluation.eps must be a list of float, got ['a']")
    _refused(lambda: _robustness(tmp_path, lambda raw: raw["models"][0]["train"].update(batch_size=True)),
             "models[0].train.batch_size must be int, got True")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ProblemSpec.from_dict({"gray": "yes"}), "problem spec field 'gray' must be true or false, got 'yes' (str)"),
        (lambda: ProblemSpec.from_dict({"size": 2.5}),
         "problem spec field 'size' must be an integer >= 1 or null, got 2.5 (float)"),
        (lambda: ProblemSpec.from_dict({"sigma": -1}), "problem spec field 'sigma' must be a finite number >= 0, got -1"),
        (lambda: SolverSpec.from_dict({"max_iter": "ten"}),
         "solver field 'max_iter' must be an integer >= 1, got 'ten' (str)"),
        (lambda: SolverSpec.from_dict({"step": 0}), "solver field 'step' must be a finite number > 0, got 0"),
        (lambda: SolverSpec.from_dict({"unsafe": 1}), "solver field 'unsafe' must be true or false, got 1 (int)"),
        (lambda: OutputSpec.from_dict({"dir": 3}), "output field 'dir' must be a string, got 3 (int)"),
        (lambda: SolveConfig.from_dict({"solver": {"tol": "x"}}),
         "solver field 'tol' must be a number, got 'x' (str) (in section 'solver' of solve config)"),
        (lambda: TrainConfig.from_dict({"data": {"photos": "yes"}}), "data.photos must be true or false, got 'yes'"),
        (lambda: CompareConfig.from_dict({"priors": ["tv"], "size": "big"}),
         "compare config field 'size' must be an integer >= 8, got 'big'"),
    ],
)
def test_a_wrong_type_is_refused_in_one_line(build, message):
    _refused(build, message)


# ---------------------------------------------------------------------------- the shared pieces


@dataclass(frozen=True)
class _Job:
    steps: int = 1
    name: str | None = None
    radii: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if self.name == "boom":
            raise TypeError("bad name")


def test_from_mapping_refuses_non_mappings_and_keeps_key_order():
    assert from_mapping(_Job, {"steps": 2}, "job") == _Job(steps=2)
    _refused(lambda: from_mapping(_Job, ["steps"], "job"), "job must be a mapping of keys to values, got list")
    _refused(lambda: from_mapping(_Job, None, "job"), "job must be a mapping of keys to values, got NoneType")
    assert from_mapping(_Job, None, "job", none_is_empty=True) == _Job()
    # the first unknown key in the order written, the valid keys in field order
    _refused(lambda: from_mapping(_Job, {"zz": 1, "aa": 2}, "job"), "unknown key 'zz' in job; valid keys: steps, name, radii")
    _refused(lambda: check_keys({"b": 1}, ["c", "a"], "s"), "unknown key 'b' in s; valid keys: c, a")


def test_from_mapping_constructor_errors():
    _refused(lambda: from_mapping(_Job, {"steps": -1}, "job"), "steps must be >= 0")
    _refused(lambda: from_mapping(_Job, {"steps": -1}, "job", context=True), "steps must be >= 0 (in job)")
    _refused(lambda: from_mapping(_Job, {"name": "boom"}, "job"), "job: bad name")
    with pytest.raises(TypeError, match=re.escape("bad name (in job)")):
        from_mapping(_Job, {"name": "boom"}, "job", context=True)


def test_type_checks_follow_the_hints():
    assert from_mapping(_Job, {"steps": 3, "radii": [1, 0.5], "name": None}, "job", check_types=True).steps == 3
    assert from_mapping(_Job, {"name": 5}, "job").name == 5  # unchecked without check_types
    _refused(lambda: from_mapping(_Job, {"steps": "3"}, "job", check_types=True), "job.steps must be int, got '3'")
    _refused(lambda: check_field_types(_Job, {"name": 5}, "job"), "job.name must be str or null, got 5")
    _refused(lambda: check_field_types(_Job, {"radii": ["x"]}, "job"), "job.radii must be a list of float, got ['x']")


def test_value_validators():
    assert as_int(None, "n", "s", minimum=0, optional=True) is None
    _refused(lambda: as_int(11, "n", "s", minimum=0, maximum=10), "s field 'n' must be <= 10, got 11")
    assert as_float("2", "x", "s", exclusive=True) == 2.0
    _refused(lambda: as_float(0.0, "x", "s", exclusive=True), "s field 'x' must be a finite number > 0, got 0")
    _refused(lambda: as_float(float("inf"), "x", "s"), "s field 'x' must be a finite number >= 0, got inf")
    _refused(lambda: as_choice("c", "k", "s", ("a", "b")), "s field 'k' must be one of a, b, got 'c'")


def test_yaml_loading_lives_in_problems_config(tmp_path):
    assert problems.spec.load_yaml_mapping is load_yaml_mapping and problems.spec.StrictLoader is StrictLoader
    path = tmp_path / "dup.yaml"
    path.write_text("solver:\n  max_iter: 3\n  max_iter: 4\n")
    with pytest.raises(ValueError, match="duplicate key 'max_iter' at lines 2 and 3; keep one of them"):
        load_yaml_mapping(path)
