"""Intake: scan the inbox, claim what is ready, enqueue it; fail what will never be ready.

It reads the inbox and knows nothing about running jobs. ``InboxScanner`` is the one
classifier: every entry gets an ``InboxEntry`` verdict (READY, WAITING, IGNORED, FAILED) and a
reason, which ``facedrop status`` prints and the log records once per change.

A claim is one rename of the entry into ``<work>/<slot>/``. Across filesystems (EXDEV) the
source is first renamed to ``.facedrop-claimed.<slot>.<name>`` inside the inbox (atomic on its
own filesystem, and invisible to the next scan), then copied into the slot, fsynced, renamed
into place and only then removed.

- A READY folder becomes ``<slot>/<name>``, the job's payload.
- A READY ``.zip`` becomes ``<slot>/.zip/<zip>`` (the claim), is unpacked into
  ``<slot>/<job>`` (``unpack_job_zip``: the folder appears in one rename, complete), the job is
  recorded, and only then is the zip deleted: its content is the job folder, which ends in the
  outbox's ``input/``. A zip that cannot be unpacked ends failed with the zip itself in
  ``input/``.
- A FAILED entry (unfinished past the grace period, a zip that never became whole) is claimed
  the same way with ``<slot>/.failed`` (the error, as JSON) written first, recorded and ended
  failed at once: ``error.txt`` names the file in ``input/``, the problem and the fix (the job
  parser's own words when it finds a specific problem, e.g. "no face photo"; else what
  readiness waited for). It is never run and never retried.

``recover`` resumes whatever a kill interrupted, before the worker may take anything: it
finishes half-done cross-filesystem claims, redoes an unpack that did not finish (unless the
slot's job is already recorded, so an unpacked job never runs twice), ends recorded jobs whose
slot holds ``.failed``, and enqueues claimed folders a kill left unrecorded.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.atomic import fsync_dir, write_text_atomic
from pipeline.errors import FacedropError, InputError
from watcher.faults import Fault, FaultBoard, FaultKind, Scope
from watcher.inbox_scan import InboxEntry, InboxScanner, Kind, Verdict
from watcher.jobqueue import JobState
from watcher.jobzip import ZipLimits, unpack_job_zip
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle, Outcome
from watcher.names import fit, name_max
from watcher.outbox import (
    INPUT,
    CopyStopped,
    Outbox,
    Rename,
    copy_tree,
    fsync_tree,
    is_litter,
    remove_tree,
)

log = logging.getLogger("facedrop.intake")

CLAIM_PREFIX = ".facedrop-claimed."
ZIP_HOLD = ".zip"  # <slot>/.zip/<name>.zip: a claimed zip until its job is recorded
FAILED_MARK = ".failed"  # <slot>/.failed: this slot's job ends failed, never runs
UNZIP_PREFIX = ".unzip-"  # unpack_job_zip's staging folder
RESUME_SUFFIX = ".claiming"  # <slot>/.<name>.claiming: a cross-filesystem copy, resumable


# The job parser's verdict on a claimed folder that never became ready: its specific error, or
# None (the readiness error stands). Wired by the daemon; never runs the pipeline.
Explain = Callable[[Path], FacedropError | None]


def new_slot_name() -> str:
    """A unique work-area slot: hex digits only (no '.', so claimed names parse)."""
    return f"{time.time_ns():x}{os.getpid():x}"


class Intake:
    """The claimer. ``scan`` returns how many entries wait; ``verdicts`` says why, per entry."""

    def __init__(
        self,
        inbox: Path,
        work_dir: Path,
        outbox: Outbox,
        lifecycle: Lifecycle,
        scanner: InboxScanner,
        faults: FaultBoard,
        *,
        rename: Rename = os.rename,
        crash: CrashHook = no_crash,
        stopping: Callable[[], bool] = lambda: False,
        zip_limits: ZipLimits | None = None,
        explain: Explain = lambda folder: None,
    ) -> None:
        self.inbox = inbox
        self.work_dir = work_dir
        self._outbox = outbox
        self._lifecycle = lifecycle
        self._scanner = scanner
        self._faults = faults
        self._rename = rename
        self._crash = crash
        self._stopping = stopping
        self._zip_limits = zip_limits or ZipLimits()
        self._explain = explain
        self.verdicts: list[InboxEntry] = []
        self._logged: dict[str, tuple[Verdict, str]] = {}
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
        """Classify every inbox entry, claim the ready and failed ones; return how many wait."""
        if self._faults.blocked(Scope.INTAKE):
            self._hold()
            return 0
        if not self.inbox_ok():
            return 0
        if self.needs_recovery:
            try:
                self.recover()
            except CopyStopped:  # a shutdown while resuming a copy: resumed again next start
                return 0
        entries = [e for e in self._scanner.scan(self.inbox)
                   if not is_claim_marker(e.name)]  # our own half-done claims
        shown: list[InboxEntry] = []
        pending = 0
        for entry in entries:
            if entry.verdict in (Verdict.READY, Verdict.FAILED):
                if self._stopping():
                    break
                try:
                    self.claim(entry)
                except CopyStopped:
                    self.needs_recovery = True  # a shutdown mid-copy: resumed on the next start
                    log.info("claim of %s stopped by shutdown; it resumes on the next start",
                             entry.name)
                    break
                except BaseException:
                    self.needs_recovery = True  # a fault mid-claim: finish it when resumed
                    raise
                continue
            pending += entry.verdict is Verdict.WAITING
            shown.append(entry)
        self._log_changes(shown)
        self.verdicts = shown
        return pending

    def _hold(self) -> None:
        """Paused: claim nothing, and say in ``status`` that every entry is held, and why."""
        faults = self._faults.active()
        why = "; ".join(f.kind.value for f in faults) or "a fault"
        try:
            names = sorted(n for n in os.listdir(self.inbox) if not n.startswith("."))
        except OSError:
            names = []
        self.verdicts = [InboxEntry(n, self.inbox / n, Kind.FILE, Verdict.WAITING,
                                    f"held in the inbox while facedrop is paused ({why})")
                         for n in names]

    def _log_changes(self, entries: list[InboxEntry]) -> None:
        """One log line per entry whose verdict or reason changed (not one per scan)."""
        now = {e.name: (e.verdict, e.reason) for e in entries}
        for entry in entries:
            if self._logged.get(entry.name) != now[entry.name]:
                log.info("inbox entry %s", entry.line())
        self._logged = now

    # ---- claiming ------------------------------------------------------------------------
    def claim(self, entry: InboxEntry) -> None:
        """Move a READY or FAILED entry into a new slot, then record it (and end it if FAILED)."""
        slot = self.work_dir / new_slot_name()
        slot.mkdir(parents=True)
        self._crash("claim.slot")
        if entry.verdict is Verdict.FAILED and entry.kind is not Kind.ZIP:
            _mark_failed(slot, entry.error, "")
        if entry.kind is Kind.ZIP:
            (slot / ZIP_HOLD).mkdir()
            dest = slot / ZIP_HOLD / entry.name
        else:
            dest = slot / entry.name
        taken = self._take(entry.path, slot, dest)
        if taken is None:
            remove_tree(slot)  # the submitter removed it meanwhile
            return
        self._scanner.tracker.forget(entry.path)
        self._crash("claim.moved")
        if entry.kind is Kind.ZIP:
            failed = entry.error or FacedropError(entry.reason or "the zip cannot be read")
            self._unzip(slot, failed if entry.verdict is Verdict.FAILED else None)
        else:
            if entry.verdict is Verdict.FAILED:
                self._sharpen(slot, taken)
            self._record(taken)
            self._end_failed(slot)

    def _sharpen(self, slot: Path, folder: Path) -> None:
        """Prefer the job parser's own words (e.g. "no face photo") to "still unfinished"."""
        try:
            err = self._explain(folder)
        except Exception:  # the readiness error already written stands
            log.exception("could not check %s", folder.name)
            return
        if err is None:
            return
        rel = ""
        if err.file and Path(err.file).is_relative_to(folder):
            rel = str(Path(err.file).relative_to(folder)).removeprefix(".")
        _mark_failed(slot, err, rel)

    def _take(self, src: Path, slot: Path, dest: Path) -> Path | None:
        """Rename ``src`` to ``dest`` (marking it claimed first across filesystems).

        Returns where it landed (across filesystems the name the marker could hold), or None
        if ``src`` is gone.
        """
        try:
            self._rename(src, dest)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno != errno.EXDEV:
                remove_tree(slot)
                raise
            # The marker's name is fitted to the disk; the job takes the name it records, so a
            # recovery that reads it back copies to the same place.
            marker = self.inbox / fit(f"{CLAIM_PREFIX}{slot.name}.{src.name}", name_max(self.inbox))
            dest = dest.parent / _claimed_name(marker)[1]
            try:
                os.rename(src, marker)  # on the inbox's own filesystem: atomic
            except FileNotFoundError:
                return None
            fsync_dir(self.inbox)
            self._crash("claim.marked")
            self._copy_claimed(marker, dest)
        return dest

    def _copy_claimed(self, marker: Path, dest: Path) -> None:
        if not dest.exists():
            # One staging name per claim, kept by a stop: the next start resumes the copy
            # (``recover``) instead of beginning again. Not litter: reconciliation keeps it.
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
        fsync_dir(self.inbox)

    def _unzip(self, slot: Path, failed: FacedropError | None) -> None:
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
                self._record(folder)
                remove_tree(hold)  # the job is recorded: the unpacked folder is the input now
                fsync_dir(slot)
                return
        self._fail_zip(slot, archive, failed)

    def _fail_zip(self, slot: Path, archive: Path, err: FacedropError | None) -> None:
        """The zip itself becomes the failed job's input: ``<slot>/<stem>/<zip>``.

        ``err`` None: the ``.failed`` mark is already written (recovery).
        """
        if err is not None:
            _mark_failed(slot, err, archive.name)
        folder = slot / fit(Path(archive.name).stem or "job", name_max(slot))
        folder.mkdir(exist_ok=True)
        os.rename(archive, folder / archive.name)
        fsync_dir(folder)
        _remove_empty(slot / ZIP_HOLD)
        self._record(folder)
        self._end_failed(slot)

    def _record(self, dest: Path) -> None:
        out = self._outbox.reserve(dest.name)
        self._crash("claim.reserved")
        try:
            self._lifecycle.enqueue(dest.name, f"{dest.parent.name}/{dest.name}", out)
        except BaseException:
            _remove_empty(self._outbox.folder(out))  # not recorded: give the name back
            raise

    def _end_failed(self, slot: Path) -> None:
        """Fail the recorded job of a slot marked ``.failed`` (never run); drop the mark."""
        mark = slot / FAILED_MARK
        try:
            data = json.loads(mark.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            data = {}
        for job in self._lifecycle.queue.list(limit=10**9):
            if job.payload.partition("/")[0] != slot.name or job.state is not JobState.QUEUED:
                continue
            self._crash("claim.failing")
            text = _failure_text(data, self._outbox, job.outbox)
            self._lifecycle.transition(job.id, JobState.FAILED, Outcome(error=text))
        mark.unlink(missing_ok=True)
        _remove_empty(slot)

    # ---- recovery ------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish what a kill interrupted (see the module docstring); runs before any job."""
        for marker in sorted(self._markers()):
            slot_name, name = _claimed_name(marker)
            slot = self.work_dir / slot_name
            slot.mkdir(parents=True, exist_ok=True)
            hold = slot / ZIP_HOLD
            dest = hold / name if hold.is_dir() else slot / name
            for path in dest.parent.iterdir():
                if is_litter(path.name):
                    remove_tree(path)
            self._copy_claimed(marker, dest)
        known = {job.payload for job in self._lifecycle.queue.list(limit=10**9)}
        for slot in sorted(self._dirs(self.work_dir)):
            self._recover_slot(slot, known)
        self.needs_recovery = False

    def _recover_slot(self, slot: Path, known: set[str]) -> None:
        recorded = any(p.partition("/")[0] == slot.name for p in known)
        for path in slot.iterdir():  # every claim marker is handled: a staged copy is orphaned
            if path.name.startswith(".") and path.name.endswith(RESUME_SUFFIX):
                remove_tree(path)
        folders = [f for f in sorted(self._dirs(slot)) if not f.name.startswith(".")]
        hold = slot / ZIP_HOLD
        if hold.is_dir():
            held = sorted(p for p in hold.iterdir() if not is_litter(p.name))
            if recorded or not held:
                remove_tree(hold)  # its job is recorded (or it never arrived): not needed
            elif (slot / FAILED_MARK).exists():
                self._fail_zip(slot, held[0], None)
                return
            elif not folders:
                log.warning("unpacking %s again: a stop interrupted it", held[0].name)
                self._unzip(slot, None)
                return
            # else: the unpack completed; the folder is recorded below, then the zip goes
        for folder in folders:
            if f"{slot.name}/{folder.name}" not in known:
                log.warning("adopting %s: it was claimed, but not recorded", folder.name)
                self._record(folder)
        remove_tree(hold)
        if (slot / FAILED_MARK).exists() and not folders and not recorded:
            (slot / FAILED_MARK).unlink()  # marked, but the entry never moved: still in the inbox
        self._end_failed(slot)
        _remove_empty(slot)

    def _markers(self) -> list[Path]:
        try:
            return [p for p in self.inbox.iterdir() if is_claim_marker(p.name)]
        except OSError:
            return []

    @staticmethod
    def _dirs(folder: Path) -> list[Path]:
        try:
            return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return []


def is_claim_marker(name: str) -> bool:
    """``.facedrop-claimed.<slot>.<name>`` with a slot as ``new_slot_name`` makes it (hex).

    A hidden folder a user or tool merely named like a marker is not ours to adopt.
    """
    if not name.startswith(CLAIM_PREFIX):
        return False
    slot, dot, rest = name[len(CLAIM_PREFIX):].partition(".")
    return bool(slot and dot and rest) and all(c in "0123456789abcdef" for c in slot)


def _claimed_name(marker: Path) -> tuple[str, str]:
    """``(slot, name)`` from a claim marker ``.facedrop-claimed.<slot>.<name>``."""
    slot, _, name = marker.name[len(CLAIM_PREFIX):].partition(".")
    return slot, name


def _mark_failed(slot: Path, err: FacedropError | None, rel: str) -> None:
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


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
