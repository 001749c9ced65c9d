"""The README and ``docs/*.md`` are tested like code.

* Every fenced block is labelled. ``python`` blocks are executed, each in a fresh namespace in a
  temporary folder, at the sizes they are written with. ``console`` / ``bash`` blocks are
  checked line by line:
  - ``stablepnp solve ...`` runs through :func:`pnp.cli.main` at smoke size (the documented
    flags are kept; ``--size``, ``--max-iter``, ``--out`` are replaced, a documented
    ``--input-dir`` gets a folder of two small images);
  - ``stablepnp certify ...`` runs (without the adversarial search);
  - ``stablepnp train / compare / robustness ...`` are parsed by the command's own parser (an
    unknown flag or a bad value fails) and the config they name is loaded and validated;
  - ``python scripts/X.py --flag ...``: the script exists and defines every documented flag;
  - install lines (``pip``, ``python3 -m venv``, ``. .venv/bin/activate``) and the test command are
    left to CI, and they are checked to be CI's own commands.
  Any other line is an error: output samples belong in ``text`` blocks. ``yaml`` blocks must be
  valid solve configs.
* The README's defaults table matches :class:`pnp.spec.SolveConfig`, the complete example
  config and the ``--help`` text. Its priors table matches the registry and the committed BSD68
  results.
* Internal wording stays out of user-facing text, and relative links resolve.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = (README, *sorted((ROOT / "docs").glob("*.md")))
USER_FACING = (*DOCS, ROOT / "CHANGELOG.md")
LANGUAGES = ("python", "console", "bash", "text", "yaml", "toml")
README_MAX_LINES = 300

#: Smoke settings of a documented ``stablepnp solve`` line: these flags (and their values) are replaced.
SOLVE_REPLACED = {"--size": 1, "--max-iter": 1, "--out": 1, "--threads": 1, "--quiet": 0, "-q": 0, "--no-figure": 0}
SOLVE_SMOKE = ["--size", "32", "--max-iter", "3", "--threads", "1", "--quiet", "--no-figure"]
#: Lines that CI runs itself (.ci/run): skipped here, compared with CI's commands below.
LEFT_TO_CI = ("pip ", "python3 -m venv", ". .venv/bin/activate", "source .venv/bin/activate", "python -m pytest")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the line of their opening fence."""
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if lang is None and fence:
            lang, start, body = fence.group(1), number, []
        elif lang is not None and line.strip() == "```":
            blocks.append(Block(path, start, lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{path.name}: the code block opened at line {start} is never closed"
    return blocks


BLOCKS = [block for path in DOCS for block in fenced_blocks(path)]


def blocks_of(*langs: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang in langs]


def command_lines(block: Block) -> list[str]:
    """Commands of a shell block: continuation lines joined, ``&&`` chains split, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary folder, with the prior and algorithm registries restored afterwards."""
    from pnp import registry

    monkeypatch.chdir(tmp_path)
    priors, algorithms = dict(registry.PRIORS), dict(registry.ALGORITHMS)
    yield tmp_path
    for table, saved in ((registry.PRIORS, priors), (registry.ALGORITHMS, algorithms)):
        table.clear()
        table.update(saved)


def run_cli(argv: list[str]) -> tuple[int, str]:
    from pnp.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


# ============================================================================ the documents
def test_the_documents_exist_and_the_readme_is_short():
    names = {p.name for p in DOCS}
    assert {"README.md", "theory.md", "benchmarks.md"} <= names
    assert (ROOT / "CHANGELOG.md").is_file()
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_every_code_block_is_labelled():
    unlabelled = [f"{b} ```{b.lang}" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unlabelled, f"label each block with one of {LANGUAGES} (output samples: text): {unlabelled}"
    assert len(blocks_of("python")) >= 4 and len(blocks_of("console", "bash")) >= 5


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: p.name)
def test_no_internal_wording(path):
    text = path.read_text(encoding="utf-8")
    found = sorted({m.group(0) for m in re.finditer(r"(?i)\bsessions?\b|\btargets?\b|\bNOT met\b", text)})
    assert not found, f"{path.name} uses internal wording {found}: state results as measured facts"


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", link) or link.startswith("mailto:"):
            continue
        file, _, anchor = link.partition("#")
        linked = path if not file else path.parent / file
        if not linked.exists() or anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(link)
    assert not broken, f"{path.name}: links to missing files or headings {broken}"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", path.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


# ============================================================================ python blocks
@pytest.mark.parametrize("block", blocks_of("python"), ids=str)
def test_python_block_runs(block, in_tmp):
    namespace = {"__name__": "__docs__"}
    exec(compile(block.text, str(block), "exec"), namespace)  # noqa: S102 - the documented code itself


# ============================================================================ yaml blocks
@pytest.mark.parametrize("block", blocks_of("yaml"), ids=str)
def test_yaml_block_is_a_valid_solve_config(block, in_tmp):
    import yaml

    from pnp.spec import SolveConfig

    config = SolveConfig.from_dict(yaml.safe_load(block.text))
    assert config.solver.max_iter >= 1


# ============================================================================ shell blocks
class _Parsed(Exception):
    """Raised instead of running a routed command once its own parser accepted the arguments."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def parse_only(argv: list[str]) -> argparse.Namespace:
    """The namespace the command's own argparse parser makes of ``argv``; the job is not run.

    Every flag must be spelled in full (argparse would accept a prefix such as ``--resum``)."""
    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        check_full_flags(self, argv[1:])
        raise _Parsed(original(self, args, namespace))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", parse)
        try:
            code, output = run_cli(argv)
        except _Parsed as parsed:
            return parsed.namespace
    pytest.fail(f"'stablepnp {shlex.join(argv)}' was refused (exit {code}): {output.strip()}")


def check_full_flags(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    abbreviated = [a for a in argv if a.startswith("-") and a.split("=", 1)[0] not in parser._option_string_actions]
    assert not abbreviated, f"'{parser.prog}' has no option {abbreviated} (spell flags in full)"


def repo_paths(argv: list[str]) -> list[str]:
    """Arguments that name a file or folder of the repository, made absolute (the test runs elsewhere)."""
    return [str(ROOT / a) if "/" in a and not a.startswith("-") and (ROOT / a).exists() else a for a in argv]


def image_folder(folder: Path) -> str:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    return str(folder)


def smoke_solve(argv: list[str], tmp: Path, index: int) -> list[str]:
    """A documented solve line at smoke size, writing into ``tmp``."""
    out, skip = [], 0
    for i, arg in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if arg in SOLVE_REPLACED:
            skip = SOLVE_REPLACED[arg]
            continue
        if i > 0 and argv[i - 1] == "--input-dir":
            arg = image_folder(tmp / f"images_{index}")
        if i > 0 and argv[i - 1] == "--image" and "." in arg and not Path(arg).exists():
            arg = observation_file(tmp / f"{index}_{Path(arg).name}")  # a documented user file
        if i > 0 and argv[i - 1] == "--kernel" and arg.endswith(".npy") and not Path(arg).exists():
            arg = str(tmp / f"{index}_{Path(arg).name}")
            np.save(arg, np.full((5, 5), 1 / 25))
        out.append(arg)
    smoke = SOLVE_SMOKE[2:] if "--observed" in argv else SOLVE_SMOKE  # an observation keeps its size
    return [*out, *smoke, "--out", str(tmp / f"out_{index}")]


def observation_file(path: Path) -> str:
    from PIL import Image

    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.random((40, 40)), 0), 1)
    Image.fromarray((255 * smooth / smooth.max()).astype(np.uint8)).save(path.with_suffix(".png"))
    return str(path.with_suffix(".png"))


def check_config(command: str, ns: argparse.Namespace) -> None:
    """Load and validate the config a parsed train / compare / robustness line names (from the repository
    root, where the documented commands run: configs name shipped files relative to it)."""
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        _check_config(command, ns)
    finally:
        os.chdir(here)


def _check_config(command: str, ns: argparse.Namespace) -> None:
    if command == "train":
        from priors.training import TrainConfig

        folders = [f for f in (ns.data_folder or []) if Path(f).is_dir()]  # documented placeholders are skipped
        TrainConfig.from_yaml(ns.config).with_overrides(folders=folders or None, out=ns.out)
    elif command == "compare":
        from pnp.compare_config import CompareConfig, bundled_config

        src = ns.config
        path = bundled_config(src) if src in ("default", "tiny") and not Path(src).exists() else Path(src)
        config = CompareConfig.from_yaml(path)
        if ns.only:
            config.select(ns.only.split(","))
    elif command == "robustness":
        from priors.robustness.config import load_config

        load_config(ns.config)


def check_stablepnp(argv: list[str], tmp: Path, index: int) -> None:
    from pnp.cli import SUBCOMMANDS

    assert argv and argv[0] in SUBCOMMANDS, f"unknown command 'stablepnp {shlex.join(argv)}'"
    command, argv = argv[0], repo_paths(argv)
    if "--help" in argv or "-h" in argv:
        code, output = run_cli(argv)
    elif command == "solve":
        from pnp.cli import build_solve_parser

        check_full_flags(build_solve_parser(), argv[1:])
        code, output = run_cli(smoke_solve(argv, tmp, index))
    elif command == "certify":
        parse_only(argv)
        code, output = run_cli([*argv, *([] if "--no-adversarial" in argv else ["--no-adversarial"])])
    else:
        check_config(command, parse_only(argv))
        return
    assert code == 0, f"'stablepnp {shlex.join(argv)}' exited with {code}: {output.strip()[-2000:]}"


def check_script(words: list[str]) -> None:
    """``python scripts/X.py ...``: the script exists and defines every flag used."""
    script = ROOT / words[1]
    assert words[1].startswith("scripts/") and script.is_file(), f"no script {words[1]}"
    source = script.read_text(encoding="utf-8")
    missing = [w.split("=", 1)[0] for w in words[2:] if w.startswith("--")
               and not re.search(r"""["']%s["']""" % re.escape(w.split("=", 1)[0]), source)]
    assert not missing, f"{words[1]} defines no {missing}"


@pytest.mark.parametrize("block", blocks_of("console", "bash"), ids=str)
def test_shell_block_commands_exist_and_run(block, in_tmp):
    commands = command_lines(block)
    assert commands, f"{block}: an empty shell block"
    for index, command in enumerate(commands):
        if command.startswith(LEFT_TO_CI):
            continue
        words = shlex.split(command, comments=True)
        if words[0] in ("torchrun", "srun") and "pnp.cli" in words:  # a launcher: the job's own arguments
            assert words[words.index("pnp.cli") - 1] == "-m", f"{block}: '{command}'"
            words = ["stablepnp", *words[words.index("pnp.cli") + 1:]]
        if words[0] == "stablepnp":
            check_stablepnp(words[1:], in_tmp, index)
        elif words[0] == "python" and len(words) > 1 and words[1].endswith(".py"):
            check_script(words)
        else:
            pytest.fail(f"{block}: '{command}' is not a command this test knows; put output samples in ```text blocks")


def test_install_and_test_commands_are_those_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith(("pip install", "python -m pytest"))]
    assert len(ci_commands) >= 3, ci_commands
    readme = {c for b in fenced_blocks(README) if b.lang in ("bash", "console") for c in command_lines(b)}
    missing = [c for c in ci_commands if c not in readme]
    assert not missing, f"README's install/test commands differ from .ci/run's: {missing}"


# ============================================================================ defaults
def readme_table(header: str) -> list[list[str]]:
    """Cells of the README table whose header row starts with ``header``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def literal(text: str):
    """A table cell's value: `true`, `null`, a number or a word."""
    text = text.strip().strip("`").strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def test_readme_defaults_are_the_code_defaults():
    import yaml

    from pnp.cli import build_solve_parser
    from pnp.spec import SolveConfig

    code = SolveConfig()
    example_path = ROOT / "pnp" / "configs" / "solve_default.yaml"
    example, resolved = yaml.safe_load(example_path.read_text(encoding="utf-8")), SolveConfig.from_yaml(example_path)
    helps = {opt: action.help or "" for action in build_solve_parser()._actions for opt in action.option_strings}
    rows = readme_table("| setting | flag | YAML key | default |")
    keys = set()
    for _, flag, key, value in rows:
        flag, key, value = flag.split("`")[1], key.strip("`"), literal(value)
        section, field = key.split(".")
        keys.add(key)
        assert same(getattr(getattr(code, section), field), value), f"README says {key} = {value!r}, code says otherwise"
        if field in example.get(section, {}):  # the complete example config spells out the same default
            assert same(getattr(getattr(resolved, section), field), value), \
                f"pnp/configs/solve_default.yaml sets {key} = {example[section][field]!r}"
        assert flag in helps, f"README names {flag}, which 'stablepnp solve' does not have"
        stated = re.search(r"default:?\s+(?:\./)?([^\s;,()]+)", helps[flag])
        if stated and value is not None:
            assert same(literal(stated.group(1).rstrip(":")), value), f"--help of {flag}: {helps[flag]!r}"
    required = {"solver.prior", "solver.algorithm", "problem.kernel", "problem.sigma", "problem.size",
                "solver.tol", "solver.max_iter", "solver.accelerate"}
    assert required <= keys, f"README defaults table misses {sorted(required - keys)}"


def test_readme_default_ridge_weight():
    from priors.ridge import RIDGE_WEIGHTS

    m = re.search(r"`ridge`: (\d*\.\d+) at noise (\d*\.\d+)", README.read_text(encoding="utf-8"), re.S)
    assert m, "README states the default ridge weight"
    rule, noise = RIDGE_WEIGHTS["ridge_gray"], float(m.group(2))
    lam = math.exp(rule["lam"][0] + rule["lam"][1] * math.log(noise / rule["reference"]))
    assert abs(lam - float(m.group(1))) < 5e-4, lam


# ============================================================================ priors table
#: README prior -> its row label in priors/results/bsd68/denoising.md
BSD68_ROWS = {
    "ridge": "convex ridge, one step (ours)",
    "ridge_stack": "ridge stack (ours)",
    "crr": "convex ridge, prox (ours)",
    "wcrr": "weakly convex ridge, prox (ours)",
    "averaged": "averaged ResNet (ours)",
    "dncnn": "DnCNN (unconstrained)",
    "averaged_unconstrained_gray": "averaged, constraint off",
    "tv": "TV",
    "bm3d": "BM3D",
}


def bsd68_results() -> dict[str, list[str]]:
    text = (ROOT / "priors" / "results" / "bsd68" / "denoising.md").read_text(encoding="utf-8")
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip().strip("|").split("|")]
                                          for line in text.splitlines() if line.startswith("| "))}


def test_readme_priors_table_matches_registry_and_bsd68_results():
    from pnp.registry import PRIORS, shipped_model_name

    results = bsd68_results()
    rows = readme_table("| `--prior` |")
    named = set()
    for name_cell, model_cell, _, certificate, bsd68, _ in rows:
        names = re.findall(r"`([^`]+)`", name_cell)
        named.update(names)
        name = names[0]
        assert name in PRIORS or shipped_model_name(name), f"README lists an unknown prior {name!r}"
        model = re.findall(r"`([^`]+)`", model_cell)
        if name in PRIORS and model:
            assert PRIORS[name].model == model[0], f"{name}: README says model {model[0]}"
        if bsd68 == "–":
            continue
        row = results[BSD68_ROWS[name]]
        assert abs(float(bsd68) - float(row[2].split("/")[0])) < 0.005, f"{name}: BSD68 {bsd68} vs {row[2]}"
        alpha = re.search(r"α ([0-9.]+)", certificate)
        if alpha:
            assert abs(float(alpha.group(1)) - float(row[5])) < 1e-3, f"{name}: α {alpha.group(1)} vs {row[5]}"
        elif "none" in certificate:
            assert row[5] == "none", f"{name}: README says no certificate, results say α {row[5]}"
        lipschitz = re.search(r"Lipschitz ([0-9.]+)", certificate)
        if lipschitz:
            assert abs(float(lipschitz.group(1)) - float(row[4])) < 1e-3, f"{name}: Lipschitz vs {row[4]}"
    shipped = {name for name, entry in PRIORS.items() if entry.model and shipped_model_name(entry.model)}
    expected = shipped | {"tv", "wavelet", "tikhonov", "bm3d"}
    assert expected <= named, f"README priors table misses {sorted(expected - named)}"


@pytest.mark.parametrize("block", blocks_of("toml"), ids=str)
def test_toml_blocks_parse_and_name_the_plugin_group(block):
    import tomllib

    from pnp.plugins import ENTRY_POINT_GROUP

    data = tomllib.loads(block.text)
    groups = data.get("project", {}).get("entry-points", {})
    assert groups and set(groups) <= {ENTRY_POINT_GROUP}, groups
