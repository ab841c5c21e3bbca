"""Is a job folder complete? Only then may the daemon claim it.

A folder is ready when: ``job.yaml`` exists; no file has a temp or partial name; no file is a
cloud placeholder (macOS ``SF_DATALESS``) or being copied by Finder (its busy creation date);
every file the optional ``files:`` manifest lists is present with its size (and hash); the
sizes, mtimes and sampled content (``watcher.content_sample``) of everything inside have been
unchanged over ``settle_checks`` checks spanning ``settle_checks - 1`` settle intervals; a
face photo and a recording are there; and every media file is *whole*
(``pipeline.media.wholeness``): a copy that stalls longer than the settle window leaves a valid
beginning of a file, which the decoders would happily accept.

Settling alone cannot tell a stalled copy from a finished one, and Finder's busy date does not
exist on Linux, so a folder that stays unfinished is not waited for forever either: once nothing
in it has changed for ``grace_seconds`` it is ``EXPIRED``, which means "claim it now": the parser
then fails it with a message naming the file (cut off, missing, hash mismatch), and it ends in
the outbox with ``error.txt``. A file that is whole but looks like a stalled preallocation
(trailing zeros) waits the grace period and is then accepted.

``job.yaml`` is read through ``watcher.saferead`` (bounded, regular files only, no aliases), so
no inbox entry can block or exhaust a check. The stat call, the clock and the wholeness check
are injectable for tests.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pipeline.errors import FacedropError, InputError
from pipeline.media import formats
from pipeline.media.wholeness import Whole, Wholeness, check_whole
from watcher.content_sample import content_sample
from watcher.jobfolder import (
    JOB_FILE,
    ManifestEntry,
    is_ignored,
    manifest_entries,
    read_job_yaml,
)
from watcher.saferead import clip, read_yaml_file, sha256_regular, size_regular

SF_DATALESS = 0x40000000  # macOS st_flags bit of an online-only (not downloaded) file
# Finder sets this creation date on a file it is still copying (kMagicBusyCreationDate).
FINDER_BUSY = datetime(1946, 2, 14, 8, 34, 56, tzinfo=UTC).timestamp()
TEMP_SUFFIXES = (".partial", ".tmp", ".temp", ".download", ".crdownload", ".part", ".icloud")

GRACE_SECONDS = 120.0
MEDIA_EXT = formats.IMAGE_EXT + formats.AUDIO_EXT + formats.VIDEO_EXT

Signature = tuple[tuple[str, int, int, int], ...]  # (path, size, mtime_ns, content sample)


class ReadyState(Enum):
    """What the Intake does with a folder now."""

    WAITING = "waiting"  # look again later; ``reason`` says for what
    READY = "ready"  # complete: claim it
    EXPIRED = "expired"  # unfinished and unchanged past the grace period: claim it to fail it
    INVALID = "invalid"  # job.yaml has settled and is wrong: claim it to fail it, now


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict on one folder; ``reason`` says what it waits for (or waited for, in vain)."""

    state: ReadyState
    reason: str = ""
    invalid: InputError | None = None  # INVALID: what is wrong with job.yaml (every bad key)

    @property
    def ready(self) -> bool:
        """Claim it now (complete, or expired so that the parser fails it with a reason)."""
        return self.state is not ReadyState.WAITING

    def error(self, folder: Path, grace_seconds: float) -> InputError:
        """For an expired folder: what it waited for, as the error a caller can report."""
        return InputError(
            f"the job was still unfinished {grace_seconds:g} s after its last change: "
            f"{self.reason}",
            fix="put the complete files in a new job folder (the copy or upload did not finish)",
            file=folder,
        )


_WAITING = ReadyState.WAITING


class Lack(Enum):
    """How a missing piece ends if nothing changes."""

    STALLED = "stalled"  # a writer stopped: after the grace period the job fails
    SUSPECT = "suspect"  # probably fine: after the grace period the job runs
    OUTSIDE = "outside"  # someone else finishes it (a cloud download, Finder): wait, no expiry


@dataclass(frozen=True, slots=True)
class _Missing:
    reason: str
    lack: Lack = Lack.STALLED


# Hidden names that tools give a file while they write it (rsync ".x.wav.Ab12Cd", Syncthing,
# LibreOffice locks, proftpd's ".in.x", our own ".partial-" staging). A hidden name with none of
# these and no input extension is a tool's own file (.gitkeep, .localized, .directory): ignored.
HIDDEN_TEMP_MARKS = (".~", ".syncthing.", ".in.", ".partial", ".facedrop", ".pureftpd-upload")
INPUT_EXT = MEDIA_EXT + (".yaml", ".yml", ".zip")


def blocking_name(name: str) -> bool:
    """A name that marks a file still being written (temp, partial, lock, a hidden copy)."""
    if is_ignored(name):
        return False
    lower = name.lower()
    if name.startswith("~$") or lower.endswith(TEMP_SUFFIXES) or ".partial" in lower:
        return True  # "x.partial.mp4" too
    return name.startswith(".") and _hidden_in_progress(lower)


def _hidden_in_progress(lower: str) -> bool:
    """A hidden name that is an input being written (".voice.wav.Xy12"), not a tool's file."""
    return lower.startswith(HIDDEN_TEMP_MARKS) or any(
        lower.endswith(ext) or f"{ext}." in lower for ext in INPUT_EXT
    )


@dataclass(slots=True)
class _History:
    signature: Signature
    since: float  # when the signature last changed: the stall clock starts here
    checks: int
    whole: dict[str, Wholeness] = field(default_factory=dict)  # valid while the signature is


class ReadinessTracker:
    """Remembers each folder's last snapshot across scans and decides when it has settled."""

    def __init__(
        self,
        settle_seconds: float,
        settle_checks: int,
        *,
        grace_seconds: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], os.stat_result] = os.lstat,
        whole: Callable[[Path], Wholeness] = check_whole,
        sample: Callable[[Path], int] = content_sample,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.settle_checks = max(1, settle_checks)
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._stat = stat
        self._whole = whole
        self._sample = sample  # writes at full size with the mtime held (see content_sample)
        self._history: dict[Path, _History] = {}
        # job.yaml's own (size, mtime) per folder, when first seen so, checks, verdict
        self._yaml: dict[Path, _YamlSeen] = {}

    def forget(self, folder: Path) -> None:
        """Drop a folder's history (it was claimed or vanished)."""
        self._history.pop(folder, None)
        self._yaml.pop(folder, None)

    def retain(self, folders: set[Path]) -> None:
        """Forget every folder not in ``folders`` (it left the inbox)."""
        for folder in set(self._history) - folders:
            del self._history[folder]
        for folder in set(self._yaml) - folders:
            del self._yaml[folder]

    def check(self, folder: Path) -> Readiness:
        """One readiness check of ``folder`` at the current clock time."""
        try:
            signature, blocker = self._snapshot(folder)
        except OSError as err:  # vanished or unreadable mid-scan: look again later
            self.forget(folder)
            return Readiness(_WAITING, f"cannot read the folder ({err.strerror})")
        now = self._clock()
        hist = self._history.get(folder)
        if hist is None or hist.signature != signature:
            hist = self._history[folder] = _History(signature, now, 0)
        hist.checks += 1
        names = {entry[0] for entry in signature}
        if blocker and blocker.lack is Lack.OUTSIDE:
            return Readiness(_WAITING, blocker.reason)
        if JOB_FILE not in names:  # not a job yet: never expires (the inbox scan reports it)
            return Readiness(_WAITING, "waiting for job.yaml")
        invalid = self._invalid_yaml(folder, signature, now)
        if invalid is not None:  # waiting cannot mend a settled job.yaml: fail it at once
            return Readiness(ReadyState.INVALID, invalid.problem, invalid)
        span = self.settle_seconds * (self.settle_checks - 1)
        if hist.checks < self.settle_checks or now - hist.since < span:
            return Readiness(_WAITING, blocker.reason if blocker else _SETTLING)
        # Settled: anything still missing now is a writer that stalled, until the grace runs out.
        missing = blocker or self._unfinished(folder, names, hist)
        if missing is None:
            return Readiness(ReadyState.READY)
        if now - hist.since < self.grace_seconds:
            return Readiness(_WAITING, missing.reason)
        if missing.lack is Lack.SUSPECT:
            return Readiness(ReadyState.READY, missing.reason)
        return Readiness(ReadyState.EXPIRED, missing.reason)

    def _invalid_yaml(self, folder: Path, signature: Signature, now: float) -> InputError | None:
        """job.yaml's error, once job.yaml alone has settled (the rest may still be copying).

        A job.yaml caught half-written can look wrong (``enhance: fa``), so it is judged only
        when its own size and mtime held over the settle checks; from then on any wrong key
        fails the job at once instead of after the grace period.
        """
        entry = next((e for e in signature if e[0] == JOB_FILE), None)
        seen = self._yaml.get(folder)
        if seen is None or seen.entry != entry:
            seen = self._yaml[folder] = _YamlSeen(entry, now)
        seen.checks += 1
        span = self.settle_seconds * (self.settle_checks - 1)
        if seen.checks < self.settle_checks or now - seen.since < span:
            return None
        if not seen.judged:
            seen.judged, seen.error = True, _yaml_error(folder)
        return seen.error

    def _unfinished(self, folder: Path, names: set[str], hist: _History) -> _Missing | None:
        """What a settled folder still lacks (None when complete)."""
        manifest, data = _manifest(folder)
        try:
            missing = self._manifest_missing(folder, names, manifest)
            if missing:
                return _Missing(missing)
            if not self._manifest_hashes_ok(folder, manifest):
                return _Missing("waiting for a file to match its sha256 in job.yaml")
        except FacedropError:  # a link out, a FIFO...: waiting cannot help, the parser says why
            return None
        except OSError:
            return _Missing("waiting for the files listed in files:")
        inputs = _inputs_missing(names, data)
        return _Missing(inputs) if inputs else self._incomplete_media(folder, names, hist)

    def _incomplete_media(self, folder: Path, names: set[str], hist: _History) -> _Missing | None:
        suspect = None
        for rel in sorted(names):
            if not rel.lower().endswith(MEDIA_EXT) or "/" in rel:
                continue
            if rel not in hist.whole:  # decoded once per (size, mtime) signature
                hist.whole[rel] = self._whole(folder / rel)
            verdict = hist.whole[rel]
            if verdict.state is Whole.INCOMPLETE:
                return _Missing(f"waiting for {rel} to be complete (it {verdict.reason})")
            if verdict.state is Whole.SUSPECT and suspect is None:
                suspect = _Missing(f"waiting a while for {rel} (it {verdict.reason})", Lack.SUSPECT)
        return suspect

    def _snapshot(self, folder: Path) -> tuple[Signature, _Missing | None]:
        entries: list[tuple[str, int, int, int]] = []
        blocker: _Missing | None = None
        for root, dirs, files in os.walk(folder, onerror=_raise):
            dirs[:] = [d for d in dirs if not is_ignored(d)]  # e.g. .dropbox.cache: not ours
            for name in dirs + files:
                path = Path(root) / name
                if is_ignored(name):
                    continue
                st = self._stat(path)
                rel = path.relative_to(folder).as_posix()
                # Never read a cloud placeholder: the read would wait for its download.
                sample = (self._sample(path) if name.lower().endswith(MEDIA_EXT)
                          and stat.S_ISREG(getattr(st, "st_mode", 0))
                          and not getattr(st, "st_flags", 0) & SF_DATALESS else 0)
                entries.append((rel, st.st_size, st.st_mtime_ns, sample))
                blocker = blocker or _file_blocker(rel, name, st)
        return tuple(sorted(entries)), blocker

    def _manifest_missing(
        self, folder: Path, names: set[str], manifest: list[ManifestEntry]
    ) -> str:
        for entry in manifest:
            if entry.name not in names:
                return f"waiting for {clip(entry.name, 60)} (listed in files:)"
            if entry.size is not None and size_regular(folder / entry.name, folder) != entry.size:
                return f"waiting for {clip(entry.name, 60)} to reach {entry.size} bytes"
        return ""

    def _manifest_hashes_ok(self, folder: Path, manifest: list[ManifestEntry]) -> bool:
        return all(
            sha256_regular(folder / e.name, folder) == e.sha256 for e in manifest if e.sha256
        )


_SETTLING = "waiting for files to stop changing"


@dataclass(slots=True)
class _YamlSeen:
    entry: tuple[str, int, int, int] | None
    since: float
    checks: int = 0
    judged: bool = False
    error: InputError | None = None


def _yaml_error(folder: Path) -> InputError | None:
    """What ``read_job_yaml`` refuses in a settled job.yaml (None: it reads, or read it later)."""
    try:
        read_job_yaml(folder)
    except InputError as err:
        return err
    except (OSError, FacedropError):  # not the submitter's settings: the parser decides later
        return None
    return None


def _inputs_missing(names: set[str], data: dict[str, Any]) -> str:
    """A face photo and a recording must be there (a writer may put job.yaml first)."""
    top = [n for n in names if "/" not in n]
    for key, exts, what in (
        ("face", formats.IMAGE_EXT, "a face photo"),
        ("audio", formats.AUDIO_EXT, "an audio file"),
    ):
        named = data.get(key)
        if isinstance(named, str):
            if named not in names:
                return f"waiting for {clip(named, 60)} (named by '{key}:' in job.yaml)"
        elif not any(n.lower().endswith(exts) for n in top):
            return f"waiting for {what} ({formats.spoken(exts)})"
    return ""


def _file_blocker(rel: str, name: str, st: Any) -> _Missing | None:
    if blocking_name(name):
        return _Missing(f"waiting for temporary file {clip(rel, 80)}")
    if getattr(st, "st_flags", 0) & SF_DATALESS:
        return _Missing(f"waiting for {rel} to download (cloud placeholder)", Lack.OUTSIDE)
    birth = getattr(st, "st_birthtime", None)
    if birth is not None and abs(birth - FINDER_BUSY) < 1.0:
        return _Missing(f"waiting for Finder to finish copying {rel}", Lack.OUTSIDE)
    return None


def _manifest(folder: Path) -> tuple[list[ManifestEntry], dict[str, Any]]:
    """The manifest and settings if job.yaml parses now; otherwise none (the parser says why)."""
    try:
        data = read_yaml_file(folder / JOB_FILE, folder)
        if not isinstance(data, dict):
            return [], {}
        entries = [e for e in manifest_entries(data, folder / JOB_FILE) if "/" not in e.name]
        return entries, data
    except (OSError, FacedropError):
        return [], {}


def _raise(err: OSError) -> None:
    raise err
