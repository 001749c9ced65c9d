"""Resuming a folder solve: the key of a batch's records and the records an earlier run left complete.

Each image's JSON record holds ``config_hash``, a hash of everything its result depends on; a rerun
(or another torchrun rank after a failure) reuses a batch whose records are all complete with the same
hash and solves the rest (:func:`pnp.batch.solve_folder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from pnp.outputs import reconstruction_paths
from pnp.record import json_safe, read_json
from pnp.report import verdict_line

__all__ = ["RECORD_KEY_FORMAT", "file_digest", "digest_of", "result_settings", "record_key", "stored_records"]


#: Version of what a record's ``config_hash`` covers; a change makes earlier records stale.
RECORD_KEY_FORMAT = "folder-record-1"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_of(data: Any) -> str:
    return hashlib.sha256(json.dumps(json_safe(data), sort_keys=True).encode()).hexdigest()[:20]


def result_settings(spec: Any) -> dict[str, Any]:
    """The settings that determine the results (not the progress bar, not whether figures are drawn)."""
    return {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("progress", "figures")}


def record_key(job: Any, chunk: list, batch_index: int, digests: Mapping[Path, str]) -> str:
    """Hash of everything a batch's records depend on: settings, model, parameter, its images and their order."""
    return digest_of({"format": RECORD_KEY_FORMAT, "settings": result_settings(job.spec), "model": job.loaded.fingerprint,
                       "value": job.value, "batch": batch_index,
                       "images": [(str(p), digests[p]) for p, _ in chunk]})


def stored_records(job: Any, chunk: list, key: str) -> list[dict[str, Any]] | None:
    """The records of a batch written by an earlier run with the same key, when all are complete; else None.

    A record is complete when its JSON (written last, atomically) holds ``key`` and the reconstruction
    (and, with figures on, the figure) exists.
    """
    records = []
    for path, _ in chunk:
        stem = job.stems.get(path, path.stem)
        data = read_json(job.out / f"{stem}.json")
        if not isinstance(data, dict) or data.get("config_hash") != key:
            return None
        if not all(p.is_file() for p in reconstruction_paths(job.out, stem).values()):
            return None
        if job.spec.figures and not (job.out / f"{stem}.png").is_file():
            return None
        report = data.pop("report", None)
        for extra in ("history", "config_hash"):
            data.pop(extra, None)
        data["guarantee_line"] = verdict_line(report)
        records.append(data)
    return records
