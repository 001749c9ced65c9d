"""Nothing a user owns is overwritten: inputs, files of the same stem, devices and FIFOs as outputs."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from pnp.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str, fragment: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    from PIL import Image

    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    Image.fromarray((img * 255).astype(np.uint8)).save(d / "a.png")
    np.save(d / "a.npy", img)  # same stem, other suffix
    return d


def _bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_the_input_folder_is_refused_as_output_folder(folder):
    before = _bytes(folder)
    code, _, err = run_cli(["solve", "--input-dir", str(folder), "--out", str(folder), "--prior", "tv",
                            "--max-iter", "3", "--quiet"])
    one_line_error(code, err, "is the input folder")
    assert _bytes(folder) == before


def test_inputs_sharing_a_stem_get_distinct_outputs(folder, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(["solve", "--input-dir", str(folder), "--out", str(out), "--prior", "tv",
                            "--max-iter", "3", "--quiet"])
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"a_png.json", "a_npy.json", "a_png_reconstruction.npy", "a_npy_reconstruction.npy"} <= names


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_device_is_refused_as_json_target(tmp_path):
    code, _, err = run_cli(["solve", "--size", "32", "--max-iter", "2", "--json", "/dev/full", "--quiet",
                            "--out", str(tmp_path / "o")])
    one_line_error(code, err, "not a regular file")
    assert Path("/dev/full").is_char_device()


def test_a_fifo_is_refused_as_json_target_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_cli(["solve", "--size", "32", "--max-iter", "2", "--json", str(fifo), "--quiet",
                            "--out", str(tmp_path / "o")])
    one_line_error(code, err, "not a regular file")
