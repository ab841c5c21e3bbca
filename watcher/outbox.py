"""Atomic file operations for the work area and the write-once outbox (DESIGN.md, "The outbox").

Claims and moves are renames on one volume; across volumes (EXDEV) the tree is copied, fsynced
and renamed into place inside the target folder, then the source is removed. Small files
(``status.json`` and friends) are written to a temp name and renamed, so a reader (or Dropbox)
never sees half a file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import fsync_dir
from pipeline.atomic import write_text_atomic as write_atomic
from pipeline.spec import TimingRecord

Rename = Callable[[Path, Path], None]
STATUS = "status.json"


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (best effort on folders)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def move(src: Path, dest: Path, rename: Rename = os.rename) -> None:
    """Move ``src`` to ``dest`` atomically: a rename, or on EXDEV copy + fsync + rename + delete."""
    try:
        rename(src, dest)
        return
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    staging = dest.parent / f".{dest.name}.copying-{os.getpid()}"
    if src.is_dir():
        shutil.copytree(src, staging, symlinks=True)
    else:
        shutil.copy2(src, staging)
    if staging.is_dir():
        fsync_tree(staging)
    else:
        _fsync_file(staging)
    os.rename(staging, dest)  # same folder as dest: atomic
    fsync_dir(dest.parent)
    if src.is_dir():
        shutil.rmtree(src)
    else:
        src.unlink()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def reserve_dir(parent: Path, name: str) -> Path:
    """Create ``parent/name``, or ``name (2)``, ``name (3)``... : never reuse an existing folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name} ({n})")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free folder name for {name} in {parent}")


def write_status(folder: Path, state: str, **fields: Any) -> None:
    """``status.json``: state (queued|running|done|failed), stage, progress, attempt, time."""
    data = {"state": state, **fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_atomic(folder / STATUS, json.dumps(data, indent=2) + "\n")


def write_timing(folder: Path, record: TimingRecord) -> None:
    """``timing.json`` (machine-readable) and ``timing.log`` (a table for people)."""
    write_atomic(folder / "timing.json", json.dumps(record.to_json(), indent=2) + "\n")
    write_atomic(folder / "timing.log", record.to_table())


def write_resolved_job(folder: Path, resolved: dict[str, Any]) -> None:
    """The settings actually used, as ``job.yaml``."""
    write_atomic(folder / "job.yaml", yaml.safe_dump(resolved, sort_keys=False))


def partial_path(folder: Path, output_name: str) -> Path:
    """Where the pipeline writes the video before it is verified: ``<stem>.partial.mp4``.

    The real extension stays last so muxers can infer the container from the name.
    """
    stem, dot, ext = output_name.rpartition(".")
    return folder / f"{stem}.partial.{ext}" if dot else folder / f"{output_name}.partial"
