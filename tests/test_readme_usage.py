"""The README's usage block names every flag of every ``stablepnp`` subcommand."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from pnp.cli import SUBCOMMANDS, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _usage_block() -> dict[str, str]:
    """``{command: its usage text}`` from the code block under "## Command line"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1]
    block = section.split("```", 2)[1]
    usage: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"stablepnp (\w+)", line)
        if m:
            current = m.group(1)
            usage[current] = line
        elif current and line.startswith(" "):
            usage[current] += " " + line.strip()
    return usage


def _flags(command: str) -> set[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([command, "--help"])
        except SystemExit as exc:  # argparse's --help of the solve parser
            code = exc.code
    assert code in (0, None), err.getvalue()
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.getvalue())) - {"--help"}


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_flag_is_in_the_readme(command):
    usage = _usage_block()
    assert command in usage, f"README's usage block has no line for 'stablepnp {command}'"
    missing = sorted(flag for flag in _flags(command) if not re.search(re.escape(flag) + r"(?![\w-])", usage[command]))
    assert not missing, f"README usage of 'stablepnp {command}' misses {missing}"
