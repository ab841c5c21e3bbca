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

The slot's layout and the steps that finish a claim (copy in, unpack, record, end failed) are
``watcher.slots``. Before the first claim, ``recover`` resumes whatever a kill interrupted
(``watcher.claim_recovery``).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from pipeline.atomic import fsync_dir
from pipeline.errors import FacedropError
from watcher.claim_recovery import recover_claims
from watcher.faults import Fault, FaultBoard, FaultKind, Scope
from watcher.filetree import CopyStopped, remove_tree
from watcher.inbox_scan import InboxEntry, InboxScanner, Kind, Verdict
from watcher.jobzip import ZipLimits
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle
from watcher.names import fit, name_max
from watcher.outbox import Outbox, Rename
from watcher.slots import (
    CLAIM_PREFIX,
    ZIP_HOLD,
    Slots,
    claimed_name,
    is_claim_marker,
    mark_failed,
    new_slot_name,
)

log = logging.getLogger("facedrop.intake")

# The job parser's verdict on a claimed folder that never became ready: its specific error, or
# None (the readiness error stands). Wired by the daemon; never runs the pipeline.
Explain = Callable[[Path], FacedropError | None]


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
        self._lifecycle = lifecycle
        self._scanner = scanner
        self._faults = faults
        self._rename = rename
        self._crash = crash
        self._stopping = stopping
        self._explain = explain
        self._slots = Slots(outbox, lifecycle, crash=crash, stopping=stopping,
                            zip_limits=zip_limits)
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
            mark_failed(slot, entry.error, "")
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
            self._slots.unzip(slot, failed if entry.verdict is Verdict.FAILED else None)
        else:
            if entry.verdict is Verdict.FAILED:
                self._sharpen(slot, taken)
            self._slots.record(taken)
            self._slots.end_failed(slot)

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
        mark_failed(slot, err, rel)

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
            dest = dest.parent / claimed_name(marker)[1]
            try:
                os.rename(src, marker)  # on the inbox's own filesystem: atomic
            except FileNotFoundError:
                return None
            fsync_dir(self.inbox)
            self._crash("claim.marked")
            self._slots.copy_claimed(marker, dest)
        return dest

    # ---- recovery ------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish the claims a kill interrupted (``watcher.claim_recovery``); before any job."""
        recover_claims(self.inbox, self.work_dir, self._lifecycle.queue, self._slots)
        self.needs_recovery = False
