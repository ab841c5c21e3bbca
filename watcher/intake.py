"""Intake: scan the inbox, check readiness, claim ready job folders, enqueue them.

It reads the inbox and knows nothing about running jobs. A claim is one rename into
``<work>/<slot>/<name>``. Across filesystems (EXDEV) the source is first renamed to
``.facedrop-claimed.<slot>.<name>`` inside the inbox (atomic on its own filesystem, and invisible
to the next scan), then copied into the work area, fsynced, renamed into place and only then
removed. ``recover`` resumes such a half-done claim after a kill and enqueues claimed folders a
kill left unrecorded, so a kill at any step is resumed, never repeated.

For every inbox entry the last scan records an ``EntryVerdict`` (why it waits or is ignored);
``classify`` is the hook for a richer per-entry classification.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pipeline.atomic import fsync_dir
from watcher.faults import Fault, FaultBoard, FaultKind, Scope
from watcher.killpoints import CrashHook, no_crash
from watcher.outbox import (
    COPYING,
    Outbox,
    Rename,
    copy_tree,
    fsync_tree,
    is_litter,
    remove_tree,
)
from watcher.readiness import ReadinessTracker
from watcher.transition import Lifecycle

log = logging.getLogger("facedrop.intake")

CLAIM_PREFIX = ".facedrop-claimed."


class Verdict(StrEnum):
    """What the daemon does with an inbox entry."""

    WAITING = "waiting"
    IGNORED = "ignored"
    CLAIMED = "claimed"


@dataclass(frozen=True, slots=True)
class EntryVerdict:
    """One inbox entry and why it waits or is ignored."""

    name: str
    verdict: Verdict
    reason: str = ""


# A verdict for an entry that is not a candidate job folder, or None to check its readiness.
Classifier = Callable[[Path], EntryVerdict | None]


def default_classify(path: Path) -> EntryVerdict | None:
    """Job folders are plain folders; everything else is ignored, with the reason."""
    name = path.name
    if name.startswith("."):
        return EntryVerdict(name, Verdict.IGNORED, "hidden (names starting with '.' are skipped)")
    if path.is_symlink():
        return EntryVerdict(name, Verdict.IGNORED,
                            "a link; put the job folder itself into the inbox")
    try:
        is_dir = path.is_dir()
    except OSError as err:
        return EntryVerdict(name, Verdict.WAITING, f"cannot be read ({err.strerror})")
    if not is_dir:
        return EntryVerdict(name, Verdict.IGNORED,
                            "not a folder; a job is a folder with a photo, a recording and "
                            "job.yaml")
    return None


def new_slot_name() -> str:
    """A unique work-area slot: hex digits only (no '.', so claimed names parse)."""
    return f"{time.time_ns():x}{os.getpid():x}"


class Intake:
    """The claimer. ``scan`` returns how many folders wait; ``verdicts`` says why."""

    def __init__(
        self,
        inbox: Path,
        work_dir: Path,
        outbox: Outbox,
        lifecycle: Lifecycle,
        tracker: ReadinessTracker,
        faults: FaultBoard,
        *,
        rename: Rename = os.rename,
        crash: CrashHook = no_crash,
        classify: Classifier = default_classify,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.inbox = inbox
        self.work_dir = work_dir
        self._outbox = outbox
        self._lifecycle = lifecycle
        self._tracker = tracker
        self._faults = faults
        self._rename = rename
        self._crash = crash
        self._classify = classify
        self._stopping = stopping
        self.verdicts: list[EntryVerdict] = []
        self.needs_recovery = True

    # ---- the inbox itself ----------------------------------------------------------------
    def inbox_ok(self) -> bool:
        """Is the inbox a usable folder? Recreate it if it was deleted; report a fault if not."""
        try:
            st = os.stat(self.inbox)
        except FileNotFoundError:
            if os.path.islink(self.inbox):
                self._faults.report(Fault(
                    FaultKind.INBOX,
                    f"the inbox {self.inbox} is a link to {os.readlink(self.inbox)}, which is gone",
                    "reconnect the disk or folder it points to, or remove the link",
                ))
                return False
            try:
                self.inbox.mkdir(parents=True, exist_ok=True)  # deleted or renamed: recreate
            except OSError as err:
                self._faults.report(Fault(FaultKind.INBOX, f"cannot create the inbox "
                                          f"{self.inbox} ({err.strerror})"))
                return False
            return True
        except OSError as err:
            self._faults.report(Fault(FaultKind.INBOX, f"cannot read the inbox {self.inbox} "
                                      f"({err.strerror})"))
            return False
        if not stat.S_ISDIR(st.st_mode):
            self._faults.report(Fault(
                FaultKind.INBOX, f"the inbox {self.inbox} is a file, not a folder",
                "move that file away; facedrop then makes the inbox folder again",
            ))
            return False
        self._faults.resolve(FaultKind.INBOX)
        return True

    # ---- scanning ------------------------------------------------------------------------
    def scan(self) -> int:
        """Check every inbox entry, claim the ready folders; return how many wait."""
        if self._faults.blocked(Scope.INTAKE) or not self.inbox_ok():
            return 0
        if self.needs_recovery:
            self.recover()
        try:
            entries = list(self.inbox.iterdir())
        except OSError:
            return 0
        verdicts: list[EntryVerdict] = []
        folders = []
        for path in entries:
            if path.name.startswith(CLAIM_PREFIX):
                continue  # our own half-done claim: recover() finishes it
            verdict = self._classify(path)
            if verdict is not None:
                verdicts.append(verdict)
                continue
            try:
                folders.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue  # vanished between listing and stat
        self._tracker.retain({folder for _mtime, folder in folders})
        pending = 0
        for _mtime, folder in sorted(folders):
            if self._stopping():
                break
            readiness = self._tracker.check(folder)
            if not readiness.ready:
                pending += 1
                verdicts.append(EntryVerdict(folder.name, Verdict.WAITING, readiness.reason))
                continue
            self._tracker.forget(folder)
            try:
                self.claim(folder)
            except BaseException:
                self.needs_recovery = True  # a fault mid-claim: finish it when resumed
                raise
        self.verdicts = verdicts
        return pending

    # ---- claiming ------------------------------------------------------------------------
    def claim(self, folder: Path) -> None:
        """Move a ready folder into ``work/<slot>/<name>`` and enqueue it."""
        slot = self.work_dir / new_slot_name()
        slot.mkdir(parents=True)
        self._crash("claim.slot")
        dest = slot / folder.name
        try:
            self._rename(folder, dest)
        except FileNotFoundError:
            slot.rmdir()  # the submitter removed it meanwhile
            return
        except OSError as err:
            if err.errno != errno.EXDEV:
                _remove_empty(slot)
                raise
            marker = self.inbox / f"{CLAIM_PREFIX}{slot.name}.{folder.name}"
            os.rename(folder, marker)  # on the inbox's own filesystem: atomic
            fsync_dir(self.inbox)
            self._crash("claim.marked")
            self._copy_claimed(marker, slot, folder.name)
        self._crash("claim.moved")
        self._record(dest)

    def _copy_claimed(self, marker: Path, slot: Path, name: str) -> None:
        dest = slot / name
        if not dest.exists():
            staging = slot / f".{name}{COPYING}{os.getpid()}"
            remove_tree(staging)
            try:
                copy_tree(marker, staging)
                fsync_tree(staging)
            except BaseException:
                remove_tree(staging)
                raise
            self._crash("claim.copied")
            os.rename(staging, dest)
            fsync_dir(slot)
            self._crash("claim.renamed")
        remove_tree(marker)
        fsync_dir(self.inbox)

    def _record(self, dest: Path) -> None:
        out = self._outbox.reserve(dest.name)
        self._crash("claim.reserved")
        try:
            self._lifecycle.enqueue(dest.name, f"{dest.parent.name}/{dest.name}", out)
        except BaseException:
            _remove_empty(self._outbox.folder(out))  # not recorded: give the name back
            raise

    # ---- recovery ------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish half-done cross-filesystem claims; enqueue claimed folders nobody recorded."""
        for marker in sorted(self._markers()):
            slot_name, _, name = marker.name[len(CLAIM_PREFIX):].partition(".")
            slot = self.work_dir / slot_name
            slot.mkdir(parents=True, exist_ok=True)
            for path in slot.iterdir():
                if is_litter(path.name):
                    remove_tree(path)
            self._copy_claimed(marker, slot, name)
        known = {job.payload for job in self._lifecycle.queue.list(limit=10**9)}
        for slot in sorted(self._dirs(self.work_dir)):
            for folder in sorted(self._dirs(slot)):
                if folder.name.startswith("."):
                    continue
                if f"{slot.name}/{folder.name}" not in known:
                    log.warning("adopting %s: it was claimed, but not recorded", folder.name)
                    self._record(folder)
            _remove_empty(slot)
        self.needs_recovery = False

    def _markers(self) -> list[Path]:
        try:
            return [p for p in self.inbox.iterdir() if p.name.startswith(CLAIM_PREFIX)]
        except OSError:
            return []

    @staticmethod
    def _dirs(folder: Path) -> list[Path]:
        try:
            return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return []


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass

