"""The work area's slots: where a claimed inbox entry lands, and the steps that make it a job.

A slot is ``<work>/<slot>/`` (``new_slot_name``: hex digits). What it may hold:

- ``<slot>/<name>``: a claimed folder, the job's payload;
- ``<slot>/.zip/<zip>``: a claimed zip until its job is recorded (``unzip``), unpacked through
  a ``.unzip-*`` staging folder;
- ``<slot>/.failed``: the error (JSON) of an entry that ends failed and never runs;
- ``<slot>/.<name>.claiming``: a cross-filesystem copy in progress, resumable after a stop.

A cross-filesystem claim first renames the inbox entry to the marker
``.facedrop-claimed.<slot>.<name>`` inside the inbox (``copy_claimed`` finishes it).

Both the claim (``watcher.intake``) and the recovery at start-up (``watcher.claim_recovery``)
finish a slot with these same steps, so a claim a kill interrupted ends as one that ran through.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.atomic import fsync_dir, write_text_atomic
from pipeline.errors import FacedropError, InputError
from watcher.filetree import CopyStopped, copy_tree, fsync_tree, remove_empty, remove_tree
from watcher.jobqueue import JobState
from watcher.jobzip import ZipLimits, unpack_job_zip
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle, Outcome
from watcher.names import fit, name_max
from watcher.outbox import INPUT, Outbox, is_litter

CLAIM_PREFIX = ".facedrop-claimed."
ZIP_HOLD = ".zip"  # <slot>/.zip/<name>.zip: a claimed zip until its job is recorded
FAILED_MARK = ".failed"  # <slot>/.failed: this slot's job ends failed, never runs
UNZIP_PREFIX = ".unzip-"  # unpack_job_zip's staging folder
RESUME_SUFFIX = ".claiming"  # <slot>/.<name>.claiming: a cross-filesystem copy, resumable


def new_slot_name() -> str:
    """A unique work-area slot: hex digits only (no '.', so claimed names parse)."""
    return f"{time.time_ns():x}{os.getpid():x}"


def is_claim_marker(name: str) -> bool:
    """``.facedrop-claimed.<slot>.<name>`` with a slot as ``new_slot_name`` makes it (hex).

    A hidden folder a user or tool merely named like a marker is not ours to adopt.
    """
    if not name.startswith(CLAIM_PREFIX):
        return False
    slot, dot, rest = name[len(CLAIM_PREFIX):].partition(".")
    return bool(slot and dot and rest) and all(c in "0123456789abcdef" for c in slot)


def claimed_name(marker: Path) -> tuple[str, str]:
    """``(slot, name)`` from a claim marker ``.facedrop-claimed.<slot>.<name>``."""
    slot, _, name = marker.name[len(CLAIM_PREFIX):].partition(".")
    return slot, name


class Slots:
    """The steps that turn a claimed slot into a recorded job (and end it if marked failed)."""

    def __init__(
        self,
        outbox: Outbox,
        lifecycle: Lifecycle,
        *,
        crash: CrashHook = no_crash,
        stopping: Callable[[], bool] = lambda: False,
        zip_limits: ZipLimits | None = None,
    ) -> None:
        self._outbox = outbox
        self._lifecycle = lifecycle
        self._crash = crash
        self._stopping = stopping
        self._zip_limits = zip_limits or ZipLimits()

    def copy_claimed(self, marker: Path, dest: Path) -> None:
        """Copy a claim marker (in the inbox) to ``dest`` in its slot, then remove the marker."""
        if not dest.exists():
            # One staging name per claim, kept by a stop: the next start resumes the copy
            # (``watcher.claim_recovery``) instead of beginning again. Not litter:
            # reconciliation keeps it.
            staging = dest.parent / fit(f".{dest.name}", name_max(dest.parent), RESUME_SUFFIX)
            try:
                if marker.is_dir():
                    copy_tree(marker, staging, resume=True, stop=self._stopping)
                    fsync_tree(staging, stop=self._stopping)
                else:
                    remove_tree(staging)
                    shutil.copy2(marker, staging)
                    fsync_tree(staging)
            except CopyStopped:
                raise
            except BaseException:
                remove_tree(staging)
                raise
            self._crash("claim.copied")
            os.rename(staging, dest)
            fsync_dir(dest.parent)
            self._crash("claim.renamed")
        remove_tree(marker)
        fsync_dir(marker.parent)  # the inbox

    def unzip(self, slot: Path, failed: FacedropError | None) -> None:
        """Unpack ``<slot>/.zip/<zip>`` into the slot and record the job; a bad zip ends failed."""
        hold = slot / ZIP_HOLD
        zips = sorted(p for p in hold.iterdir() if not is_litter(p.name))
        if not zips:
            return
        archive = zips[0]
        if failed is None:
            for path in slot.iterdir():
                if path.name.startswith(UNZIP_PREFIX):
                    remove_tree(path)  # an unpack a kill interrupted: redo it
            try:
                folder = unpack_job_zip(archive, slot, self._zip_limits)
            except InputError as err:  # ZipJobError, or saferead's refusal: the zip's fault
                failed = err
            else:
                self._crash("claim.unzipped")
                self.record(folder)
                remove_tree(hold)  # the job is recorded: the unpacked folder is the input now
                fsync_dir(slot)
                return
        self.fail_zip(slot, archive, failed)

    def fail_zip(self, slot: Path, archive: Path, err: FacedropError | None) -> None:
        """The zip itself becomes the failed job's input: ``<slot>/<stem>/<zip>``.

        ``err`` None: the ``.failed`` mark is already written (recovery).
        """
        if err is not None:
            mark_failed(slot, err, archive.name)
        folder = slot / fit(Path(archive.name).stem or "job", name_max(slot))
        folder.mkdir(exist_ok=True)
        os.rename(archive, folder / archive.name)
        fsync_dir(folder)
        remove_empty(slot / ZIP_HOLD)
        self.record(folder)
        self.end_failed(slot)

    def record(self, dest: Path) -> None:
        """Reserve the job's outbox folder and enqueue the job whose payload is ``dest``."""
        out = self._outbox.reserve(dest.name)
        self._crash("claim.reserved")
        try:
            self._lifecycle.enqueue(dest.name, f"{dest.parent.name}/{dest.name}", out)
        except BaseException:
            remove_empty(self._outbox.folder(out))  # not recorded: give the name back
            raise

    def end_failed(self, slot: Path) -> None:
        """Fail the recorded job of a slot marked ``.failed`` (never run); drop the mark."""
        mark = slot / FAILED_MARK
        try:
            data = json.loads(mark.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            data = {}
        for job in self._lifecycle.queue.list(limit=None):
            if job.payload.partition("/")[0] != slot.name or job.state is not JobState.QUEUED:
                continue
            self._crash("claim.failing")
            text = _failure_text(data, self._outbox, job.outbox)
            self._lifecycle.transition(job.id, JobState.FAILED, Outcome(error=text))
        mark.unlink(missing_ok=True)
        remove_empty(slot)


def mark_failed(slot: Path, err: FacedropError | None, rel: str) -> None:
    """Write ``<slot>/.failed``: the error, with the file as a path inside ``input/``."""
    data = {
        "title": err.title if err else "Problem with the job",
        "problem": err.problem if err else "the job could not be read",
        "fix": err.fix if err else "",
        "file": rel,
    }
    write_text_atomic(slot / FAILED_MARK, json.dumps(data))


def _failure_text(data: dict[str, object], outbox: Outbox, outbox_name: str) -> str:
    """error.txt: the problem, the file where the user finds it (in ``input/``), the fix."""
    where = outbox.folder(outbox_name) / INPUT
    rel = str(data.get("file") or "")
    lines = [f"{data.get('title') or 'Problem with the job'}: "
             f"{data.get('problem') or 'the job could not be read'}",
             f"File: {where / rel if rel else where}"]
    if data.get("fix"):
        lines.append(f"Fix: {data['fix']}")
    return "\n".join(lines) + "\n"
