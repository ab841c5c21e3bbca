"""What travels between the intake and the workers: a job message and a result manifest.

A message carries ids and content hashes, never files or machine-local paths. A manifest is the
JSON a worker commits with its result files (or with an error, for a failed job): it is stored
as one more result file, ``RESULT_FILE``, so the storage's commit (name -> sha256) covers it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.atomic import TEMP_SUFFIX
from watcher.storage import Storage

# Where a failed job's error text names the outbox folder; the intake puts the real path in.
OUTBOX_MARK = "{outbox}"
# The order result files are fetched into the outbox: timing.json last, so a video with
# timing.json beside it is a complete fetch (reconciliation relies on that).
FETCH_LAST = "timing.json"


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One job as a worker sees it: its key, its name, its files by sha256."""

    key: str  # unique per claimed job (its work-area slot)
    name: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "files": dict(self.files)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobMessage:
        return cls(str(data["key"]), str(data["name"]), {str(k): str(v)
                                                          for k, v in data["files"].items()})


class Verdict(StrEnum):
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A committed result."""

    verdict: Verdict
    worker: str
    files: tuple[str, ...] = ()  # result files stored under the job and attempt
    video: str = ""
    realtime_factor: float = 0.0
    total: float | None = None
    error: str = ""  # failed: the whole error.txt text, with OUTBOX_MARK for the folder

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "worker": self.worker, "files": list(self.files),
                "video": self.video, "realtime_factor": self.realtime_factor,
                "total": self.total, "error": self.error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            verdict=Verdict(data["verdict"]), worker=str(data.get("worker", "")),
            files=tuple(str(f) for f in data.get("files", ())), video=str(data.get("video", "")),
            realtime_factor=float(data.get("realtime_factor") or 0.0),
            total=data.get("total"), error=str(data.get("error", "")),
        )

    def fetch_order(self) -> list[str]:
        return sorted(self.files, key=lambda name: (name == FETCH_LAST, name))


RESULT_FILE = "facedrop-result.json"  # the manifest, stored and committed beside the files


def commit(storage: Storage, key: str, attempt: int, manifest: Manifest,
           digests: dict[str, str], scratch: Path) -> int:
    """Store the manifest as a result file and commit the attempt; returns the winner."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f".{key}.{attempt}.{RESULT_FILE}{TEMP_SUFFIX}"
    try:
        path.write_text(json.dumps(manifest.to_json()), encoding="utf-8")
        digest = storage.put_result(key, attempt, RESULT_FILE, path)
    finally:
        path.unlink(missing_ok=True)
    return storage.commit_result(key, attempt, {**digests, RESULT_FILE: digest})


def read_manifest(storage: Storage, key: str, attempt: int, scratch: Path) -> Manifest:
    """The committed attempt's manifest."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f".{key}.{attempt}.{RESULT_FILE}{TEMP_SUFFIX}"
    try:
        storage.get_result(key, attempt, RESULT_FILE, path)
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    finally:
        path.unlink(missing_ok=True)
