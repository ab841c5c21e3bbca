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
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import TEMP_SUFFIX, fsync_dir, write_bytes_atomic, write_text_atomic
from pipeline.spec import JobQuality, TimingRecord
from watcher.filetree import copy_regular, copy_tree, fsync_tree, remove_empty, remove_tree
from watcher.jobqueue import Job, JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.names import fit, name_max, reserve_dir

log = logging.getLogger("facedrop.outbox")

Rename = Callable[[Path, Path], None]
STATUS = "status.json"
ERROR = "error.txt"
INPUT = "input"
TIMING = ("timing.json", "timing.log")
# the quality report's files (pipeline.quality.outputs names them; pipeline never writes here)
QUALITY_FILES = ("quality.json", "preview.jpg", "poster.jpg", "syncnet.png")
RESOLVED = "job.yaml"
COPYING = ".copying-"


def staging_path(dest: Path) -> Path:
    """Where a cross-filesystem copy to ``dest`` is staged (swept by reconciliation).

    Fitted to the file system's name limit: a 250-byte job name still gets a staging folder.
    """
    return dest.parent / fit(f".{dest.name}", name_max(dest.parent), f"{COPYING}{os.getpid()}")


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
        if src.is_dir() and not src.is_symlink():
            for rel in copy_tree(src, staging):
                log.warning("not copied (a pipe, socket or device, not a file): %s", src / rel)
        elif not copy_regular(src, staging):
            raise OSError(errno.EINVAL, "not a regular file", str(src))
        fsync_tree(staging)
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


def _timing_part(folder: Path, key: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / TIMING[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    part = data.get(key) if isinstance(data, dict) else None
    return part if isinstance(part, dict) else None


def read_quality(folder: Path) -> dict[str, Any] | None:
    """A done job's quality verdict (``timing.json``'s ``quality``: verdict, reasons, notes,
    headline, summary), or None (no verdict: an older job, or a pipeline that does not score)."""
    return _timing_part(folder, "quality")


def read_motion(folder: Path) -> dict[str, Any] | None:
    """A done job's motion source (``timing.json``'s ``motion``: source, reason, seed), or None
    (an older job, or a pipeline that does not say)."""
    return _timing_part(folder, "motion")


def status_fields(job: Job, quality: dict[str, Any] | None = None,
                  motion: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``status.json`` of a queued job as the queue records it (the single mapping), with
    a done job's quality verdict (``read_quality``) and motion source (``read_motion``)."""
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
            if quality is not None:
                fields["quality"] = quality
            if motion is not None:
                fields["motion"] = motion
        else:
            fields["error"] = first_line(job.error)
    return fields


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class Outbox:
    """The outbox root and everything written into it."""

    def __init__(
        self, root: Path, *, rename: Rename = os.rename, crash: CrashHook = no_crash,
        estimator: Callable[[Job], dict[str, Any]] | None = None,
    ) -> None:
        self.root = root
        self._rename = rename
        self._crash = crash
        self._estimator = estimator  # a queued job's expected duration (watcher.estimate)

    def folder(self, name: str) -> Path:
        return self.root / name

    def reserve(self, name: str) -> str:
        """Create ``name``, or ``name (2)``, ``name (3)``...: never reuse an existing folder.

        Names are fitted to the outbox file system's limit in bytes (``watcher.names``), so a
        250-byte job name gets a folder instead of ENAMETOOLONG.
        """
        folder = reserve_dir(self.root, name)
        fsync_dir(self.root)
        return folder.name

    # ---- status.json ---------------------------------------------------------------------
    def write_status(self, folder: Path, state: str, **fields: Any) -> None:
        data = {"state": state, **fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text_atomic(folder / STATUS, json.dumps(data, indent=2) + "\n")

    def publish(self, job: Job) -> None:
        """Write the job's ``status.json`` from its queue record."""
        folder = self.folder(job.outbox)
        folder.mkdir(parents=True, exist_ok=True)  # in case someone removed it
        done = job.state is JobState.DONE
        quality = read_quality(folder) if done else None
        motion = read_motion(folder) if done else None
        fields = status_fields(job, quality, motion)
        if job.state is JobState.QUEUED and self._estimator is not None:
            try:
                fields["estimate"] = self._estimator(job)
            except Exception as exc:  # an estimate is never worth a missing status.json
                log.warning("no estimate for job %s: %s", job.name, exc)
        self.write_status(folder, job.state.value, **fields)

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
        for name in (*TIMING, ERROR, *QUALITY_FILES):
            (folder / name).unlink(missing_ok=True)

    def write_resolved_job(self, folder: Path, resolved: dict[str, Any]) -> None:
        """The settings actually used, as ``job.yaml``."""
        write_text_atomic(folder / RESOLVED, yaml.safe_dump(resolved, sort_keys=False))

    def write_timing(self, folder: Path, record: TimingRecord) -> None:
        """``timing.json`` (machine-readable) and ``timing.log`` (a table for people)."""
        write_text_atomic(folder / TIMING[0], json.dumps(record.to_json(), indent=2) + "\n")
        write_text_atomic(folder / TIMING[1], record.to_table())

    def write_quality(self, folder: Path, quality: JobQuality) -> None:
        """quality.json, preview.jpg, poster.jpg (whichever the job scored), each atomically;
        written before the video takes its final name, so they appear with it."""
        for name, data in quality.files.items():
            if name not in QUALITY_FILES:
                raise ValueError(f"not a quality file: {name!r}")
            write_bytes_atomic(folder / name, data)

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
        remove_empty(source.parent)

    def copy_inputs(self, folder: Path, source: Path) -> None:
        """``facedrop run``: copy (never move) the job folder into ``input/``.

        FIFOs and devices are left out, never opened.
        """
        for rel in copy_tree(source, folder / INPUT, exist_ok=True):
            log.warning("not copied (a pipe, socket or device, not a file): %s", source / rel)


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
    limit = name_max(folder)
    if dot:
        return folder / fit(stem, limit, f".partial.{ext}")
    return folder / fit(output_name, limit, ".partial")


def remove_partials(folder: Path) -> None:
    """Delete unverified videos an attempt left behind."""
    for path in folder.glob("*.partial.*"):
        path.unlink(missing_ok=True)
