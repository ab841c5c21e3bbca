"""The outbox contract's one owner (DESIGN.md, "The outbox"), for the daemon and ``facedrop run``.

An outbox folder is reserved under a name no other folder has (``name (2)``...), then gets
``status.json`` (queued | running with stage and progress | done | failed), the resolved
``job.yaml``, the video (written as ``.partial``, renamed when verified), ``timing.json`` and
``timing.log``, ``error.txt`` on failure, and ``input/``: the submitted files. Every small file
is written atomically (``pipeline.atomic``) with the same mode as the videos.

``move`` is the claim/delivery primitive: a rename on one filesystem; across filesystems
(EXDEV) a copy staged as ``.copying-*`` beside the destination, fsynced, renamed into place,
then the source removed. A kill at any step leaves the source intact or the destination
complete, never a half tree under the final name.
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

from pipeline.atomic import TEMP_SUFFIX, fsync_dir, write_text_atomic
from pipeline.spec import TimingRecord
from watcher.jobqueue import Job, JobState
from watcher.killpoints import CrashHook, no_crash

Rename = Callable[[Path, Path], None]
STATUS = "status.json"
ERROR = "error.txt"
INPUT = "input"
TIMING = ("timing.json", "timing.log")
RESOLVED = "job.yaml"
COPYING = ".copying-"


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (best effort on folders)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a folder tree (links as links, metadata kept), stopping at the first error.

    Unlike ``shutil.copytree``, which gathers errors into one ``shutil.Error`` without an errno,
    a full or read-only disk surfaces as the ``OSError`` it is (``watcher.faults`` needs it).
    """
    dest.mkdir()
    for entry in os.scandir(src):
        target = dest / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            copy_tree(Path(entry.path), target)
        else:
            shutil.copy2(entry.path, target)
    shutil.copystat(src, dest)


def staging_path(dest: Path) -> Path:
    """Where a cross-filesystem copy to ``dest`` is staged (swept by reconciliation)."""
    return dest.parent / f".{dest.name}{COPYING}{os.getpid()}"


def move(
    src: Path, dest: Path, rename: Rename = os.rename, crash: CrashHook = no_crash,
    point: str = "",
) -> None:
    """Move ``src`` to ``dest`` atomically: a rename, or on EXDEV copy + fsync + rename + delete.

    ``crash(f"{point}_copied")`` and ``crash(f"{point}_moved")`` mark the cross-filesystem steps.
    """
    try:
        rename(src, dest)
        return
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    staging = staging_path(dest)
    remove_tree(staging)
    try:
        if src.is_dir():
            copy_tree(src, staging)
            fsync_tree(staging)
        else:
            shutil.copy2(src, staging)
            _fsync_file(staging)
    except BaseException:
        remove_tree(staging)  # a full or read-only disk: leave no half copy behind
        raise
    if point:
        crash(f"{point}_copied")
    os.rename(staging, dest)  # same folder as dest: atomic
    fsync_dir(dest.parent)
    if point:
        crash(f"{point}_moved")
    remove_tree(src)


def remove_tree(path: Path) -> None:
    """Remove a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def free_name(name: str, n: int) -> str:
    """``name`` for n = 1, else ``name (n)``: the one rule for same-named folders."""
    return name if n == 1 else f"{name} ({n})"


def is_litter(name: str) -> bool:
    """A temp file or staging folder an interrupted write leaves (never a user's file)."""
    return name.startswith(".") and (name.endswith(TEMP_SUFFIX) or COPYING in name)


def read_status(folder: Path) -> dict[str, Any] | None:
    """``status.json`` of an outbox folder, or None if absent or unreadable."""
    try:
        data = json.loads((folder / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status_fields(job: Job) -> dict[str, Any]:
    """The ``status.json`` of a queued job as the queue records it (the single mapping)."""
    fields: dict[str, Any] = {"job": job.name, "attempt": job.attempts}
    if job.state is JobState.QUEUED and job.attempts:
        fields["note"] = "will be retried"
    elif job.state is JobState.RUNNING:
        fields.update(stage=job.stage or "starting", progress=round(job.progress, 4))
    elif job.state in (JobState.DONE, JobState.FAILED):
        fields["seconds"] = round(
            (job.finished_at or 0) - (job.started_at or job.claimed_at), 3
        )
        if job.state is JobState.DONE:
            fields["video"] = job.video
            if job.realtime_factor is not None:
                fields["realtime_factor"] = round(job.realtime_factor, 4)
        else:
            fields["error"] = first_line(job.error)
    return fields


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class Outbox:
    """The outbox root and everything written into it."""

    def __init__(
        self, root: Path, *, rename: Rename = os.rename, crash: CrashHook = no_crash
    ) -> None:
        self.root = root
        self._rename = rename
        self._crash = crash

    def folder(self, name: str) -> Path:
        return self.root / name

    def reserve(self, name: str) -> str:
        """Create ``name``, or ``name (2)``, ``name (3)``...: never reuse an existing folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = free_name(name, n)
            try:
                (self.root / candidate).mkdir()
            except FileExistsError:
                continue
            fsync_dir(self.root)
            return candidate
        raise FileExistsError(f"no free folder name for {name} in {self.root}")

    # ---- status.json ---------------------------------------------------------------------
    def write_status(self, folder: Path, state: str, **fields: Any) -> None:
        data = {"state": state, **fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text_atomic(folder / STATUS, json.dumps(data, indent=2) + "\n")

    def publish(self, job: Job) -> None:
        """Write the job's ``status.json`` from its queue record."""
        folder = self.folder(job.outbox)
        folder.mkdir(parents=True, exist_ok=True)  # in case someone removed it
        self.write_status(folder, job.state.value, **status_fields(job))

    def agrees(self, job: Job) -> bool:
        """Does ``status.json`` say the state and attempt the queue records?"""
        status = read_status(self.folder(job.outbox))
        return bool(
            status
            and status.get("state") == job.state.value
            and status.get("attempt") == job.attempts
        )

    # ---- the files of an attempt ---------------------------------------------------------
    def begin_attempt(self, folder: Path) -> None:
        """Clear what an earlier, interrupted attempt left: partial videos, timing, error."""
        folder.mkdir(parents=True, exist_ok=True)
        remove_partials(folder)
        for name in (*TIMING, ERROR):
            (folder / name).unlink(missing_ok=True)

    def write_resolved_job(self, folder: Path, resolved: dict[str, Any]) -> None:
        """The settings actually used, as ``job.yaml``."""
        write_text_atomic(folder / RESOLVED, yaml.safe_dump(resolved, sort_keys=False))

    def write_timing(self, folder: Path, record: TimingRecord) -> None:
        """``timing.json`` (machine-readable) and ``timing.log`` (a table for people)."""
        write_text_atomic(folder / TIMING[0], json.dumps(record.to_json(), indent=2) + "\n")
        write_text_atomic(folder / TIMING[1], record.to_table())

    def write_error(self, folder: Path, message: str) -> None:
        write_text_atomic(folder / ERROR, message)

    # ---- input/ --------------------------------------------------------------------------
    def deliver_inputs(self, folder: Path, source: Path) -> None:
        """Move the job's inputs into ``input/``; safe to repeat after a kill at any step."""
        dest = folder / INPUT
        if dest.exists():  # an earlier delivery completed its rename: only the source is left
            remove_tree(source)
        elif source.exists():
            move(source, dest, self._rename, self._crash, "finish.inputs")
        _remove_empty(source.parent)

    def copy_inputs(self, folder: Path, source: Path) -> None:
        """``facedrop run``: copy (never move) the job folder into ``input/``."""
        shutil.copytree(source, folder / INPUT, symlinks=True, dirs_exist_ok=True)

    def sweep(self, folder: Path) -> list[Path]:
        """Remove temp files and staging folders an interrupted write left; return them."""
        removed: list[Path] = []
        try:
            entries = list(folder.iterdir())
        except OSError:
            return removed
        for path in entries:
            if is_litter(path.name):
                remove_tree(path)
                removed.append(path)
        return removed


class ProgressThrottle:
    """Progress reaches ``status.json`` a few times a second, not once per frame."""

    def __init__(self, interval: float = 0.25, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._interval, self._clock = interval, clock
        self._last = (float("-inf"), "")

    def due(self, stage: str, fraction: float) -> bool:
        now = self._clock()
        if stage == self._last[1] and now - self._last[0] < self._interval and fraction < 1.0:
            return False
        self._last = (now, stage)
        return True


def partial_path(folder: Path, output_name: str) -> Path:
    """Where the pipeline writes the video before it is verified: ``<stem>.partial.mp4``.

    The real extension stays last so muxers can infer the container from the name.
    """
    stem, dot, ext = output_name.rpartition(".")
    return folder / f"{stem}.partial.{ext}" if dot else folder / f"{output_name}.partial"


def remove_partials(folder: Path) -> None:
    """Delete unverified videos an attempt left behind."""
    for path in folder.glob("*.partial.*"):
        path.unlink(missing_ok=True)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
