"""Every inbox entry accounted for: a verdict and a reason in words for each one.

Nothing in the inbox may sit there unclaimed while nobody is told why. ``InboxScanner.scan``
classifies each entry: a job folder ready to claim; a ``.zip`` ready to unpack as a job
(``watcher.jobzip``); one still waiting (and for what); one ignored (and why: a loose photo, a
link, a folder of job folders, hidden litter); or one failed (unfinished past the grace period,
or a zip that will never be whole), which the Intake moves to the outbox with ``error.txt``.
``facedrop status`` and the log print the list as it is.

Nothing here opens an entry's content except a zip's directory (bounded, regular files only);
folders go through ``ReadinessTracker``. The clock is injectable.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pipeline.errors import FacedropError, InputError
from pipeline.media import formats
from watcher.jobfolder import JOB_FILE, is_ignored
from watcher.jobzip import is_zip_name
from watcher.readiness import ReadinessTracker, ReadyState, blocking_name
from watcher.saferead import open_regular, shorten

_NESTED_LOOK = 50  # subfolders looked into when deciding "a folder of job folders"


class Verdict(Enum):
    """What the Intake does with an inbox entry."""

    READY = "ready"  # claim it (a folder) or unpack and claim it (a zip)
    WAITING = "waiting"  # look again later
    IGNORED = "ignored"  # never a job as it stands; the reason says what to do
    FAILED = "failed"  # will not become a job by waiting: to the outbox with error.txt


class Kind(Enum):
    """What an inbox entry is on disk."""

    FOLDER = "folder"
    ZIP = "zip"
    FILE = "file"
    LINK = "link"
    SPECIAL = "special"  # FIFO, socket, device
    GONE = "gone"  # vanished while being looked at


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One inbox entry, its verdict and the reason in words (for status and the log)."""

    name: str
    path: Path
    kind: Kind
    verdict: Verdict
    reason: str = ""
    error: InputError | None = None  # for FAILED: the error.txt the Intake writes

    def line(self) -> str:
        """``name: verdict (reason)``, as ``facedrop status`` prints it."""
        why = f" ({self.reason})" if self.reason else ""
        return f"{shorten(self.name, 80)}: {self.verdict.value}{why}"


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float
    checks: int


class InboxScanner:
    """Classifies inbox entries; remembers zips' sizes across scans to see them settle."""

    def __init__(
        self, tracker: ReadinessTracker, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tracker = tracker
        self._clock = clock
        self._zips: dict[Path, _Seen] = {}

    def scan(self, inbox: Path) -> list[InboxEntry]:
        """A verdict for every entry in ``inbox`` (sorted by name); [] if it cannot be listed."""
        try:
            names = sorted(os.listdir(inbox))
        except OSError:
            return []
        entries = [self.classify(inbox / name) for name in names]
        present = {e.path for e in entries}
        self.tracker.retain({e.path for e in entries if e.kind is Kind.FOLDER})
        for gone in set(self._zips) - present:
            del self._zips[gone]
        return entries

    def classify(self, path: Path) -> InboxEntry:
        """The verdict on one inbox entry."""
        name = path.name
        try:
            st = os.lstat(path)
        except OSError:
            return InboxEntry(name, path, Kind.GONE, Verdict.IGNORED, "it vanished while scanned")
        if is_ignored(name):
            return _entry(path, Kind.FILE, Verdict.IGNORED, "Finder or sync-client litter")
        if stat.S_ISLNK(st.st_mode):
            return _entry(
                path, Kind.LINK, Verdict.IGNORED,
                "a link: facedrop does not follow links in the inbox; move the folder or zip "
                "itself into the inbox",
            )
        if stat.S_ISDIR(st.st_mode):
            return self._folder(path)
        if not stat.S_ISREG(st.st_mode):
            return _entry(path, Kind.SPECIAL, Verdict.IGNORED, "not a file or folder (a pipe, "
                          "socket or device); remove it")
        return self._file(path, st)

    # ---- folders ------------------------------------------------------------------------

    def _folder(self, path: Path) -> InboxEntry:
        if path.name.startswith("."):
            return _entry(path, Kind.FOLDER, Verdict.IGNORED,
                          "a hidden folder (a copy in progress or a tool's own folder)")
        try:
            inside = [n for n in os.listdir(path) if not is_ignored(n)]
        except OSError as err:
            return _entry(path, Kind.FOLDER, Verdict.WAITING, f"cannot read it ({err.strerror})")
        if JOB_FILE not in inside:
            nested = _nested_jobs(path, inside)
            if nested:
                shown = ", ".join(shorten(n, 30) for n in nested[:3])
                return _entry(
                    path, Kind.FOLDER, Verdict.IGNORED,
                    f"a folder holding {len(nested)} job folder{'s' if len(nested) > 1 else ''} "
                    f"({shown}); move each job folder into the inbox itself",
                )
            if not inside:
                return _entry(path, Kind.FOLDER, Verdict.WAITING, "an empty folder")
        verdict = self.tracker.check(path)
        if verdict.state is ReadyState.READY:
            return _entry(path, Kind.FOLDER, Verdict.READY, verdict.reason)
        if verdict.state is ReadyState.INVALID and verdict.invalid is not None:
            return InboxEntry(path.name, path, Kind.FOLDER, Verdict.FAILED, verdict.reason,
                              verdict.invalid)
        if verdict.state is ReadyState.EXPIRED:
            error = verdict.error(path, self.tracker.grace_seconds)
            return InboxEntry(path.name, path, Kind.FOLDER, Verdict.FAILED, verdict.reason, error)
        return _entry(path, Kind.FOLDER, Verdict.WAITING, verdict.reason)

    # ---- files --------------------------------------------------------------------------

    def _file(self, path: Path, st: os.stat_result) -> InboxEntry:
        name, lower = path.name, path.name.lower()
        if blocking_name(name):
            return _entry(path, Kind.FILE, Verdict.WAITING, "a download or copy in progress")
        if is_zip_name(name):
            return self._zip(path, st)
        if name == JOB_FILE:
            return _entry(path, Kind.FILE, Verdict.IGNORED, "a job.yaml on its own; put it in a "
                          "job folder with the photo and the recording")
        for exts, what in (
            (formats.IMAGE_EXT, "a loose photo"),
            (formats.AUDIO_EXT, "a loose recording"),
            (formats.VIDEO_EXT, "a loose video"),
        ):
            if lower.endswith(exts):
                return _entry(path, Kind.FILE, Verdict.IGNORED, f"{what}; a job is a folder "
                              "(or .zip) holding a photo, a recording and a job.yaml")
        return _entry(path, Kind.FILE, Verdict.IGNORED,
                      "not a job folder or .zip; facedrop leaves it alone")

    def _zip(self, path: Path, st: os.stat_result) -> InboxEntry:
        now = self._clock()
        seen = self._zips.get(path)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            seen = self._zips[path] = _Seen(st.st_size, st.st_mtime_ns, now, 0)
        seen.checks += 1
        tracker = self.tracker
        span = tracker.settle_seconds * (tracker.settle_checks - 1)
        if seen.checks < tracker.settle_checks or now - seen.since < span:
            return _entry(path, Kind.ZIP, Verdict.WAITING, "waiting for the zip to stop changing")
        problem = _zip_problem(path)
        if not problem:
            return _entry(path, Kind.ZIP, Verdict.READY, "a zipped job, to unpack")
        if now - seen.since < tracker.grace_seconds:
            return _entry(path, Kind.ZIP, Verdict.WAITING, f"waiting for the zip: it {problem}")
        error = InputError(
            f"the zip {problem}, and has not changed for {tracker.grace_seconds:g} s",
            fix="zip the job folder again and put the new zip in the inbox",
            file=path,
        )
        return InboxEntry(path.name, path, Kind.ZIP, Verdict.FAILED, problem, error)


def _entry(path: Path, kind: Kind, verdict: Verdict, reason: str) -> InboxEntry:
    return InboxEntry(path.name, path, kind, verdict, reason)


def _nested_jobs(path: Path, inside: list[str]) -> list[str]:
    """Names of subfolders of ``path`` that are job folders (hold a job.yaml)."""
    found = []
    for name in sorted(inside)[:_NESTED_LOOK]:
        sub = path / name
        if sub.is_dir() and not sub.is_symlink() and os.path.lexists(sub / JOB_FILE):
            found.append(name)
    return found


def _zip_problem(path: Path) -> str:
    """Why the zip is not (yet) a readable archive, in words; "" when its directory reads."""
    try:
        with open_regular(path, path.parent) as fd, os.fdopen(os.dup(fd), "rb") as fh:
            with zipfile.ZipFile(fh) as archive:
                archive.infolist()
    except zipfile.BadZipFile:
        return "has no readable table of contents yet (still being copied, or damaged)"
    except (FacedropError, OSError, ValueError) as err:
        return f"cannot be read ({shorten(str(err), 80)})"
    return ""
