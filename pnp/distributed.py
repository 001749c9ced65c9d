"""Jobs sharded over ``torchrun`` ranks: who does which part, and the checks that every rank agrees.

``torchrun --nproc_per_node N -m pnp.cli solve --input-dir DIR`` (and ``compare``) starts N
copies of the same command; ``torchrun`` tells each its place through the environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`current`
reads it and joins the process group (``gloo`` for CPU tensors; on a CUDA machine CUDA tensors
go through ``nccl``). Without ``torchrun`` it returns a one-process :class:`Ranks` and nothing
is initialised, so the same code runs on a workstation.

The jobs split their work by a deterministic rule (round-robin over a sorted list), so every
rank knows, without messages, which items are its own; the results travel back to rank 0 with
one ``all_gather_object``. Before any work the ranks compare what determines the results
(:meth:`Ranks.agree`: settings, hashes of model files and inputs) and check that the output
folder is one folder for all of them (:func:`check_shared_folder`).

Examples
--------
>>> ranks = Ranks()                      # one process: every item is its own
>>> ranks.shard(5)
[0, 1, 2, 3, 4]
>>> Ranks(world=2, rank=1).shard(5)      # the second of two ranks: round-robin
[1, 3]
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist

__all__ = ["Ranks", "current", "check_shared_folder", "TIMEOUT_ENV", "DEFAULT_TIMEOUT_S"]

#: Environment variable: seconds a rank waits for the others at a collective (default :data:`DEFAULT_TIMEOUT_S`).
TIMEOUT_ENV = "STABLEPNP_DIST_TIMEOUT"
#: A rank that finished its shard waits this long for the slowest one (torch's own default, 30 min,
#: is shorter than an unbalanced shard of a long comparison).
DEFAULT_TIMEOUT_S = 24 * 3600

_JOINED_HERE = False  # this module initialised the process group (and closes it at exit)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of a job.

    Parameters
    ----------
    world : int
        Number of processes (1 without ``torchrun``).
    rank : int
        This process's index, ``0 <= rank < world``; rank 0 writes the merged outputs.
    local_rank : int
        Index on this node (``LOCAL_RANK``).

    Examples
    --------
    >>> r = Ranks(world=3, rank=2)
    >>> r.shard(7), r.is_main, r.prefix
    ([2, 5], False, '[rank 2] ')
    """

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.world, int) and self.world >= 1):
            raise ValueError(f"world size must be an integer >= 1, got {self.world!r}")
        if not (isinstance(self.rank, int) and 0 <= self.rank < self.world):
            raise ValueError(f"rank must be an integer in 0..{self.world - 1}, got {self.rank!r}")

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: shows the progress bar and writes the merged outputs."""
        return self.rank == 0

    @property
    def prefix(self) -> str:
        """``"[rank r] "`` for the lines a rank prints when there are several, else ``""``."""
        return f"[rank {self.rank}] " if self.distributed else ""

    def owns(self, index: int, offset: int = 0) -> bool:
        """Whether item ``index`` is this rank's (round-robin; ``offset`` rotates the assignment)."""
        return (index + offset) % self.world == self.rank

    def shard(self, n: int) -> list[int]:
        """The indices of ``n`` items that are this rank's: ``rank, rank + world, ...``."""
        return list(range(self.rank, n, self.world))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        try:
            dist.all_gather_object(out, obj)
        except RuntimeError as exc:
            raise _lost(exc) from None
        return out

    def barrier(self) -> None:
        """Wait until every rank arrives here."""
        if self.distributed:
            try:
                dist.barrier()
            except RuntimeError as exc:
                raise _lost(exc) from None

    def agree(self, items: Mapping[str, Any]) -> None:
        """Refuse, on every rank, when the ranks hold different ``items`` (settings, hashes of files).

        Raises
        ------
        ValueError
            One line naming what differs and the value on each rank.
        """
        if not self.distributed:
            return
        everyone = [{str(k): _canonical(v) for k, v in d.items()} for d in self.gather(dict(items))]
        keys = list(dict.fromkeys(k for d in everyone for k in d))
        differing = [k for k in keys if len({d.get(k, "(missing)") for d in everyone}) > 1]
        if not differing:
            return
        first = differing[0]
        by_value: dict[str, list[int]] = {}
        for r, d in enumerate(everyone):
            by_value.setdefault(d.get(first, "(missing)"), []).append(r)
        shown = "; ".join(f"{_rank_list(rs)}: {_short(v)}" for v, rs in list(by_value.items())[:4])
        raise ValueError(f"the ranks disagree on {', '.join(differing)} ({first}: {shown}); start every rank with "
                         "the same command line, config and files")

    def log(self, message: str) -> None:
        """Print one line on stderr, prefixed ``[rank r]`` when there are several ranks."""
        print(f"{self.prefix}{message}", file=sys.stderr, flush=True)


def _lost(exc: RuntimeError) -> ConnectionError:
    """The one-line error of a rank whose partners stopped (a refused input, a crash) or timed out."""
    cause = " ".join(str(exc).split())
    cause = cause.split("] ", 1)[-1] if cause.startswith("[") else cause  # drop the source location
    return ConnectionError(f"another process of this job stopped or stopped answering ({_short(cause, 90)}); its "
                           "own output says why; fix that and rerun (finished records and cells are reused)")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _rank_list(ranks: list[int]) -> str:
    shown = ",".join(map(str, ranks[:6])) + (",..." if len(ranks) > 6 else "")
    return f"rank{'s' if len(ranks) > 1 else ''} {shown}"


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer; launch with torchrun, which "
                         "sets it") from None


def _timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"environment variable {TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def _close() -> None:
    global _JOINED_HERE
    if _JOINED_HERE and dist.is_initialized():
        dist.destroy_process_group()
    _JOINED_HERE = False


def current() -> Ranks:
    """This process's :class:`Ranks`; under ``torchrun`` (``WORLD_SIZE`` > 1) joins the process group once.

    The group uses ``gloo`` (``cpu:gloo,cuda:nccl`` when CUDA is available: the messages of the
    sharded jobs are CPU objects; CUDA tensors would go through NCCL). A group that the caller
    initialised already is used as it is.

    Raises
    ------
    ValueError
        Inconsistent launch variables (a rank outside the world, a missing ``MASTER_ADDR`` /
        ``MASTER_PORT``), or a bad :data:`TIMEOUT_ENV`.
    """
    global _JOINED_HERE
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"environment variables RANK={rank} and WORLD_SIZE={world} are inconsistent (need "
                         "0 <= RANK < WORLD_SIZE); launch with torchrun, which sets both")
    if world == 1:
        return Ranks()
    if not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
        if missing:
            raise ValueError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set; launch with torchrun "
                             "(it sets the rendezvous variables) or unset WORLD_SIZE for one process")
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, timeout=_timeout())
        if not _JOINED_HERE:
            atexit.register(_close)
        _JOINED_HERE = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise ValueError(f"the process group has {dist.get_world_size()} ranks (this is rank {dist.get_rank()}) "
                         f"but the environment says WORLD_SIZE={world}, RANK={rank}; launch with torchrun")
    return Ranks(world=world, rank=rank, local_rank=local_rank)


def check_shared_folder(ranks: Ranks, folder: Path) -> None:
    """Refuse, on every rank, an output folder that is not the same folder for all ranks.

    Rank 0 writes a marker file with a random name into ``folder``; every rank looks for it. On a
    cluster whose nodes each mount their own disk at the same path the others do not see it, and
    the merged summary and the resume would miss records. The marker is removed afterwards.

    Raises
    ------
    ValueError
        Some rank cannot see the marker (names those ranks and the fix).
    """
    if not ranks.distributed:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = ranks.gather(secrets.token_hex(8) if ranks.is_main else None)[0]
    marker = folder / f".stablepnp-shared-check-{token}"
    if ranks.is_main:
        marker.write_text("written by rank 0 to check that every rank sees this folder\n")
    ranks.barrier()
    seen = ranks.gather(marker.is_file())
    ranks.barrier()  # everyone has looked before the marker goes
    if ranks.is_main:
        marker.unlink(missing_ok=True)
    blind = [r for r, ok in enumerate(seen) if not ok]
    if blind:
        raise ValueError(f"the output folder '{folder}' is not shared: {_rank_list(blind)} cannot see a file rank 0 "
                         "wrote there; put the output folder on a file system that every node mounts")
