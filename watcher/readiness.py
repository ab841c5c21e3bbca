"""Is a job folder complete? Only then may the daemon claim it.

A folder is ready when: ``job.yaml`` exists; no file has a temp or partial name; no file is a
cloud placeholder (macOS ``SF_DATALESS``) or being copied by Finder (its busy creation date);
every file the optional ``files:`` manifest lists is present with its size (and hash); and the
sizes and mtimes of everything inside have been unchanged over ``settle_checks`` checks spanning
``settle_checks - 1`` settle intervals. The stat call and the clock are injectable for tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.digest import sha256_file
from pipeline.errors import InputError
from watcher.jobfolder import JOB_FILE, is_ignored, manifest_entries

SF_DATALESS = 0x40000000  # macOS st_flags bit of an online-only (not downloaded) file
# Finder sets this creation date on a file it is still copying (kMagicBusyCreationDate).
FINDER_BUSY = datetime(1946, 2, 14, 8, 34, 56, tzinfo=UTC).timestamp()
TEMP_SUFFIXES = (".partial", ".tmp", ".temp", ".download", ".crdownload", ".part", ".icloud")

Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict on one folder; ``reason`` says what it waits for."""

    ready: bool
    reason: str = ""


def blocking_name(name: str) -> bool:
    """A name that marks a file still being written (temp, partial, lock, hidden)."""
    if is_ignored(name):
        return False
    lower = name.lower()
    return (
        name.startswith((".", "~$"))
        or lower.endswith(TEMP_SUFFIXES)
        or ".partial" in lower  # e.g. "x.partial.mp4"
    )


@dataclass(slots=True)
class _History:
    signature: Signature
    since: float
    checks: int


class ReadinessTracker:
    """Remembers each folder's last snapshot across scans and decides when it has settled."""

    def __init__(
        self,
        settle_seconds: float,
        settle_checks: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], os.stat_result] = os.lstat,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.settle_checks = max(1, settle_checks)
        self._clock = clock
        self._stat = stat
        self._history: dict[Path, _History] = {}

    def forget(self, folder: Path) -> None:
        """Drop a folder's history (it was claimed or vanished)."""
        self._history.pop(folder, None)

    def retain(self, folders: set[Path]) -> None:
        """Forget every folder not in ``folders`` (it left the inbox)."""
        for folder in set(self._history) - folders:
            del self._history[folder]

    def check(self, folder: Path) -> Readiness:
        """One readiness check of ``folder`` at the current clock time."""
        try:
            signature, blocker = self._snapshot(folder)
        except OSError as err:  # vanished or unreadable mid-scan: look again later
            self.forget(folder)
            return Readiness(False, f"cannot read the folder ({err.strerror})")
        now = self._clock()
        hist = self._history.get(folder)
        if hist is None or hist.signature != signature:
            hist = self._history[folder] = _History(signature, now, 0)
        hist.checks += 1
        if blocker:
            return Readiness(False, blocker)
        names = {entry[0] for entry in signature}
        if JOB_FILE not in names:
            return Readiness(False, "waiting for job.yaml")
        try:
            missing = self._manifest_missing(folder, names)
        except OSError:
            missing = "waiting for the files listed in files:"
        if missing:
            return Readiness(False, missing)
        span = self.settle_seconds * (self.settle_checks - 1)
        if hist.checks < self.settle_checks or now - hist.since < span:
            return Readiness(False, "waiting for files to stop changing")
        if not self._manifest_hashes_ok(folder):
            return Readiness(False, "a file does not match its sha256 yet")
        return Readiness(True)

    def _snapshot(self, folder: Path) -> tuple[Signature, str]:
        entries: list[tuple[str, int, int]] = []
        blocker = ""
        for root, dirs, files in os.walk(folder, onerror=_raise):
            for name in dirs + files:
                path = Path(root) / name
                if is_ignored(name):
                    continue
                st = self._stat(path)
                rel = path.relative_to(folder).as_posix()
                entries.append((rel, st.st_size, st.st_mtime_ns))
                blocker = blocker or _file_blocker(rel, name, st)
        return tuple(sorted(entries)), blocker

    def _manifest_missing(self, folder: Path, names: set[str]) -> str:
        for entry in _manifest(folder):
            if entry.name not in names:
                return f"waiting for {entry.name} (listed in files:)"
            if entry.size is not None and (folder / entry.name).stat().st_size != entry.size:
                return f"waiting for {entry.name} to reach {entry.size} bytes"
        return ""

    def _manifest_hashes_ok(self, folder: Path) -> bool:
        return all(sha256_file(folder / e.name) == e.sha256 for e in _manifest(folder) if e.sha256)


def _file_blocker(rel: str, name: str, st: Any) -> str:
    if blocking_name(name):
        return f"waiting for temporary file {rel}"
    if getattr(st, "st_flags", 0) & SF_DATALESS:
        return f"waiting for {rel} to download (cloud placeholder)"
    birth = getattr(st, "st_birthtime", None)
    if birth is not None and abs(birth - FINDER_BUSY) < 1.0:
        return f"waiting for Finder to finish copying {rel}"
    return ""


def _manifest(folder: Path) -> list[Any]:
    """The manifest if job.yaml parses now; otherwise none (the job fails later, with a reason)."""
    try:
        data = yaml.safe_load((folder / JOB_FILE).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return []
        return [e for e in manifest_entries(data, folder / JOB_FILE) if "/" not in e.name]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputError):
        return []


def _raise(err: OSError) -> None:
    raise err
