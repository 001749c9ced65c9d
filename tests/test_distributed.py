"""Jobs sharded over torchrun ranks (2 gloo processes on the CPU): folder solve, compare, resume, refusals.

Each torchrun launch costs a few seconds of interpreter start-up; the tests keep the images tiny
(24x24) so the work itself is small.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pnp.distributed import Ranks

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
for _name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(_name, None)


def torchrun(args: list[str], *, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node nproc -m pnp.cli ARGS`` (a free port of its own)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", "-m", "pnp.cli", *args],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def write_images(folder: Path, n: int, size: int = 24) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = 0.5 + 0.3 * np.sin((xx + 3 * i) / 4.0) * np.cos(yy / 5.0) + 0.05 * rng.standard_normal((size, size))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ============================================================================ in one process
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_disjoint_and_cover_every_item(world):
    for n in range(10):
        shards = [Ranks(world=world, rank=r).shard(n) for r in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(n))
        for offset in range(3):  # the rotated assignment (compare's cells) is a partition too
            owners = [[r for r in range(world) if Ranks(world=world, rank=r).owns(i, offset)] for i in range(n)]
            assert all(len(o) == 1 for o in owners)


def _two_ranks(other: dict) -> Ranks:
    """Rank 0 of two, whose partner holds its items updated by ``other`` (no process group needed)."""

    class TwoRanks(Ranks):
        def gather(self, obj):
            return [obj, {**obj, **other}]

    return TwoRanks(world=2, rank=0)


def test_disagreeing_ranks_get_one_line_naming_the_difference():
    items = {"max_iter": 5, "model": {"weights": "ab12"}}
    _two_ranks({}).agree(items)  # the same on both: no error
    with pytest.raises(ValueError, match=r"disagree on max_iter \(max_iter: rank 0: 5; rank 1: 6\)") as exc:
        _two_ranks({"max_iter": 6}).agree(items)
    assert "\n" not in str(exc.value) and "same command line" in str(exc.value)
    with pytest.raises(ValueError, match="disagree on model"):
        _two_ranks({"model": {"weights": "ff00"}}).agree(items)


def test_an_output_folder_that_another_rank_cannot_see_is_refused(tmp_path):
    from pnp.distributed import check_shared_folder

    class BlindPartner(Ranks):  # rank 1 answers that it does not see rank 0's marker file
        def gather(self, obj):
            return [obj, False if isinstance(obj, bool) else None]

        def barrier(self):
            pass

    with pytest.raises(ValueError, match="is not shared: rank 1 cannot see a file rank 0 wrote there"):
        check_shared_folder(BlindPartner(world=2, rank=0), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # the marker is removed
    check_shared_folder(Ranks(), tmp_path / "single")  # one process: nothing to check, nothing written
    assert not (tmp_path / "single").exists()


def test_a_rerun_reuses_complete_records_and_redoes_the_rest(tmp_path):
    from pnp.batch import solve_folder

    src, out = write_images(tmp_path / "in", 3), tmp_path / "out"
    opts = dict(prior="tv", max_iter=5, progress=False, figures=False)
    first = solve_folder(src, out, **opts)
    assert first["reused"] == 0 and first["ranks"] == 1
    assert all(json.loads((out / f"im{i}.json").read_text())["config_hash"] for i in range(3))
    (out / "im1.json").write_text('{"file": "im1.png", "psnr": 1')  # a half-written record
    (out / "im2_reconstruction.npy").unlink()  # a record whose reconstruction is missing
    again = solve_folder(src, out, **opts)
    assert again["reused"] == 1  # im0 only
    for a, b in zip(first["images"], again["images"]):
        assert a["file"] == b["file"] and abs(a["psnr"] - b["psnr"]) < 1e-9
        assert a["guarantee_line"] == b["guarantee_line"]
    assert solve_folder(src, out, **opts)["reused"] == 3
    assert solve_folder(src, out, **{**opts, "max_iter": 6})["reused"] == 0  # other settings: nothing reused


# ============================================================================ two gloo processes
def test_folder_solve_on_two_ranks_is_the_one_process_solve_and_a_killed_rank_resumes(tmp_path):
    """One process, then 2 ranks of which one is killed mid-run, then a rerun: no duplicate, no missing record."""
    from pnp.cli import main

    src = write_images(tmp_path / "in", 4)
    args = ["--input-dir", str(src), "--prior", "tv", "--max-iter", "40", "--tol", "0"]
    assert main(["solve", *args, "--out", str(tmp_path / "one"), "--no-figure", "--quiet", "--threads", "1"]) == 0
    reference = summary_of(tmp_path / "one")

    # 2 ranks, with figures; rank 1 is killed once a record exists
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pnp.cli",
           "solve", *args, "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(out.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed = _kill_rank(proc.pid, 1)
    _, err = proc.communicate(timeout=120)
    assert killed and proc.returncode != 0, err[-2000:]
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("im*.json")}
    assert 0 < len(finished) < 4 and not (out / "summary.json").exists()

    rerun = torchrun(["solve", *args, "--out", str(out), "--quiet"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = summary_of(out)
    names = [Path(r["file"]).name for r in summary["images"]]
    assert names == [f"im{i}.png" for i in range(4)]  # every image once, in folder order
    assert summary["ranks"] == 2 and summary["reused"] == len(finished)
    assert all((out / name).stat().st_mtime_ns == t for name, t in finished.items())  # not recomputed
    assert not list(out.glob("*.tmp"))
    for r, ref in zip(summary["images"], reference["images"]):
        assert Path(r["file"]).name == Path(ref["file"]).name and r["iterations"] == ref["iterations"] == 40
        assert abs(r["psnr"] - ref["psnr"]) < 1e-6 and abs(r["ssim"] - ref["ssim"]) < 1e-6
        assert (out / f"{Path(r['file']).stem}.png").is_file()


def _kill_rank(torchrun_pid: int, rank: int) -> bool:
    """SIGKILL the worker of ``rank`` among the children of the torchrun process.

    All workers are frozen first (SIGSTOP), so the run is caught mid-way however fast the machine;
    the others then go on (SIGCONT) until torchrun stops them.
    """
    children = Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children")
    workers = {}
    for pid in children.read_text().split() if children.exists() else []:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [e for e in environ if e.startswith(b"RANK=")]
        if ranks:
            workers[int(ranks[0][5:])] = int(pid)
    for pid in workers.values():
        os.kill(pid, signal.SIGSTOP)
    if rank in workers:
        os.kill(workers[rank], signal.SIGKILL)
    for r, pid in workers.items():
        if r != rank:
            os.kill(pid, signal.SIGCONT)
    return rank in workers


def test_compare_on_two_ranks_gives_the_one_process_cells_and_reuses_the_cache(tmp_path):
    from pnp.compare import CompareConfig, run_suite

    cfg = {"name": "two ranks", "images": ["camera", "astronaut"], "size": 24, "kernels": ["gaussian:1.6"],
           "noise": [0.03], "threads": 1, "solver": {"max_iter": 20, "tol": 1e-4},
           "tuning": {"image": "motorcycle", "grid_points": 2, "refine_steps": 0, "max_iter": 10},
           "priors": [{"prior": "tv", "algorithms": ["fista"]}, {"prior": "tikhonov", "algorithms": ["pgd"]}]}
    one = run_suite(CompareConfig.from_dict(cfg), tmp_path / "one", progress=False, figures=False)
    assert one["counts"]["computed"] == 4
    # a killed earlier run left one finished cell (record + reconstruction) in the cache
    out = tmp_path / "two"
    (out / "cells").mkdir(parents=True)
    kept = one["cells"][1]["key"]
    for suffix in (".json", ".npz"):
        shutil.copy(tmp_path / "one" / "cells" / f"{kept}{suffix}", out / "cells" / f"{kept}{suffix}")
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = torchrun(["compare", str(path), "--out", str(out), "--no-progress", "--no-figures"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("cells computed") == 1 and "on 2 ranks" in run.stdout  # one summary, from rank 0
    two = json.loads((out / "results.json").read_text())
    assert two["counts"] == {**one["counts"], "computed": 3, "reused": 1}
    assert [c["key"] for c in two["cells"]] == [c["key"] for c in one["cells"]]
    for a, b in zip(one["cells"], two["cells"]):
        assert abs(a["psnr"] - b["psnr"]) < 1e-9 and a["iterations"] == b["iterations"]
    assert {k: v["value"] for k, v in two["tuning"].items()} == {k: v["value"] for k, v in one["tuning"].items()}


def test_ranks_started_with_different_settings_are_refused(tmp_path):
    """Two ranks launched by hand (as a scheduler might), with different --max-iter: both refuse, nothing solved."""
    src, out = write_images(tmp_path / "in", 2), tmp_path / "out"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank, max_iter in ((0, "5"), (1, "6")):
        env = {**ENV, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pnp.cli", "solve", "--input-dir", str(src), "--out", str(out), "--prior", "tv",
             "--max-iter", max_iter, "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, results):
        lines = [x for x in err.splitlines() if x.strip()]
        assert p.returncode == 2 and len(lines) == 1, err[-2000:]
        assert "disagree on max_iter (max_iter: rank 0: 5; rank 1: 6)" in lines[0]
    assert not out.exists() or not list(out.glob("*.json"))


def test_training_resumes_on_another_number_of_processes(tmp_path):
    """A checkpoint of a 1-process run, resumed by 2 torchrun ranks, finishes with a certified model."""
    from priors.pretrained import load_checkpoint
    from priors.training import TrainConfig, load_training_checkpoint, train

    cfg = yaml.safe_load((ROOT / "priors" / "configs" / "tiny.yaml").read_text())
    cfg.update(checkpoint={"dir": str(tmp_path / "run"), "every": 2}, threads=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    train(TrainConfig.from_yaml(path), progress=False, max_steps=3)
    assert len(load_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["ranks"]) == 1
    run = torchrun(["train", str(path), "--resume", "--quiet"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming a 1-process run on 2 process(es)" in run.stderr
    state = load_training_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == cfg["optim"]["steps"] and len(state["ranks"]) == 2
    assert state["ranks"][0]["weights_sha256"] == state["ranks"][1]["weights_sha256"]
    assert load_checkpoint(tmp_path / "run" / "model.pt").stored_certificate["lipschitz"] <= 1.0 + 1e-9
