"""scripts/train_gpu.py: the GPU training entry point, smoke-run on the CPU (the CUDA path itself
is covered by tests/test_training.py's GPU-only test when a GPU is present)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_train_gpu_script_writes_weights_log_and_report_and_resumes(tmp_path):
    out = tmp_path / "gpu"
    cmd = [sys.executable, str(ROOT / "scripts/train_gpu.py"), "--out", str(out), "--device", "cpu",
           "--config", str(ROOT / "priors/configs/tiny.yaml"), "--max-steps", "2", "--chunk", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads((out / "report.json").read_text())
    assert record["steps"] == 2 and record["finished"] is False
    assert record["certificate"]["lipschitz"] is not None and set(record["test_psnr"]) == {"15", "25", "50"}
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    # a second run continues from the checkpoint instead of starting over
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((out / "report.json").read_text())["steps"] == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the refusal cannot happen")
def test_train_gpu_script_refuses_cuda_without_a_gpu(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "scripts/train_gpu.py"), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2 and "no CUDA device" in run.stderr
