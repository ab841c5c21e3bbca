"""Environment faults: not the job's fault, so they pause the daemon instead of failing jobs.

A read-only or full outbox, a full state disk (SQLite says "database or disk is full", which is
not an ``OSError``), an inbox that vanished behind a symlink or became a file, missing weights.
``classify`` turns an exception into a ``Fault`` (or None: the job's own problem). The
``FaultBoard`` holds the active faults: the first report of a kind is logged and notified once;
work (and, for disk faults, intake) waits with exponential backoff; a fault with a probe is
cleared when its probe passes, one without (weights) when the next try gets past it.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from pipeline.errors import WeightsError

log = logging.getLogger("facedrop.faults")

ENV_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                        errno.EIO, errno.ENOTDIR})
SQLITE_ENV = ("disk is full", "disk i/o error", "readonly database", "unable to open",
              "read-only file system")
PROBE_NAME = ".facedrop-probe.tmp"  # a temp name: reconciliation sweeps a leftover one
PROBE_BYTES = 64 * 1024


class FaultKind(StrEnum):
    """Which resource is faulty."""

    INBOX = "inbox"
    OUTBOX = "outbox"
    STATE = "state"
    WEIGHTS = "weights"
    DEVICE = "device"  # the configured GPU cannot be used (gone, asleep, named wrongly)
    FLEET = "fleet"  # queue.backend redis: the Redis server or the shared storage


class Scope(Enum):
    """What a fault pauses."""

    INTAKE = "intake"
    WORK = "work"


PAUSES: dict[FaultKind, frozenset[Scope]] = {
    FaultKind.INBOX: frozenset({Scope.INTAKE}),
    FaultKind.OUTBOX: frozenset({Scope.INTAKE, Scope.WORK}),
    FaultKind.STATE: frozenset({Scope.INTAKE, Scope.WORK}),
    # Jobs may still be claimed and queued while the weights are missing.
    FaultKind.WEIGHTS: frozenset({Scope.WORK}),
    FaultKind.DEVICE: frozenset({Scope.WORK}),
    # Nothing is claimed or dispatched while the fleet's Redis or storage cannot be reached.
    FaultKind.FLEET: frozenset({Scope.INTAKE, Scope.WORK}),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One environment fault, in words a user can act on."""

    kind: FaultKind
    reason: str
    fix: str = ""


class EnvironmentFault(Exception):
    """Raised where a fault is detected outside an OS call (e.g. the inbox is a file)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.reason)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class Places:
    """The folders faults are attributed to."""

    inbox: Path
    outbox: Path
    state: Path
    weights: Path


def classify(err: BaseException, places: Places, default: FaultKind) -> Fault | None:
    """The environment fault behind ``err``, or None if it is the job's own problem."""
    if isinstance(err, EnvironmentFault):
        return err.fault
    if isinstance(err, WeightsError):
        return Fault(FaultKind.WEIGHTS, err.problem, err.fix)
    if isinstance(err, sqlite3.Error):
        text = str(err).lower()
        if any(s in text for s in SQLITE_ENV):
            return Fault(FaultKind.STATE, f"the state database cannot be written ({err})",
                         f"free space on the disk holding {places.state}")
        return None
    if isinstance(err, OSError) and err.errno in ENV_ERRNOS:
        if err.errno in (errno.EACCES, errno.EPERM) and _in_work_area(err, places):
            return None  # a submitted file the daemon may not read: the job's own problem
        kind = _kind_of(err, places) or default
        where = {FaultKind.INBOX: places.inbox, FaultKind.OUTBOX: places.outbox,
                 FaultKind.STATE: places.state, FaultKind.WEIGHTS: places.weights}[kind]
        return Fault(kind, f"{where}: {err.strerror or err}", _fix(err.errno or 0, where))
    return None


def _kind_of(err: OSError, places: Places) -> FaultKind | None:
    # A copy names (source, destination): the destination is the one being written.
    for name in (err.filename2, err.filename):
        if not name:
            continue
        path = os.path.abspath(os.fsdecode(name))
        for kind, root in ((FaultKind.OUTBOX, places.outbox), (FaultKind.STATE, places.state),
                           (FaultKind.INBOX, places.inbox)):
            if path == str(root) or path.startswith(str(root) + os.sep):
                return kind
    return None


def _in_work_area(err: OSError, places: Places) -> bool:
    work = str(places.state / "work") + os.sep
    return any(
        name and os.path.abspath(os.fsdecode(name)).startswith(work)
        for name in (err.filename, err.filename2)
    )


def _fix(code: int, where: Path) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the disk holding {where}"
    if code == errno.EROFS:
        return f"make {where} writable again (remount the disk read-write)"
    return f"check that {where} exists and facedrop may write to it"


def write_probe(folder: Path) -> bool:
    """Can ``folder`` take a small fsynced file? (read-only and full disks fail this)."""
    path = folder / PROBE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        return True
    except OSError:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return False


Probe = Callable[[], bool]
Notifier = Callable[[str, str], None]


@dataclass(slots=True)
class _Active:
    fault: Fault
    tries: int = 0
    next_try: float = 0.0
    since: float = field(default=0.0)


class FaultBoard:
    """The active environment faults; thread-safe (the worker thread reports, the loop probes)."""

    def __init__(
        self,
        probes: dict[FaultKind, Probe],
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        base: float = 0.5,
        cap: float = 30.0,
    ) -> None:
        self._probes = probes
        self._notifier = notifier
        self._clock = clock
        self._base, self._cap = base, cap
        self._active: dict[FaultKind, _Active] = {}
        self._lock = threading.Lock()

    def set_probe(self, kind: FaultKind, probe: Probe) -> None:
        """Give ``kind`` a probe (one known only once wired, e.g. the fleet's Redis ping)."""
        with self._lock:
            self._probes[kind] = probe

    def report(self, fault: Fault) -> None:
        """A fault was seen: the first time, log and notify; every time, back off further."""
        with self._lock:
            now = self._clock()
            entry = self._active.get(fault.kind)
            first = entry is None
            if entry is None:
                entry = self._active[fault.kind] = _Active(fault, since=now)
            entry.fault = fault
            entry.next_try = now + min(self._cap, self._base * 2**entry.tries)
            entry.tries += 1
        if first:
            scopes = " and ".join(sorted(s.value for s in PAUSES[fault.kind]))
            log.warning("paused %s: %s%s", scopes, fault.reason,
                        f" (fix: {fault.fix})" if fault.fix else "")
            self._notify("facedrop paused", fault.reason)

    def resolve(self, kind: FaultKind) -> None:
        with self._lock:
            entry = self._active.pop(kind, None)
        if entry is not None:
            log.warning("resumed: %s is fine again", kind.value)

    def blocked(self, scope: Scope) -> bool:
        """Must ``scope`` wait? Runs due probes (clearing faults whose probe passes)."""
        for kind, entry in self.snapshot():
            if scope not in PAUSES[kind]:
                continue
            if self._clock() < entry.next_try:
                return True
            probe = self._probes.get(kind)
            if probe is None:
                continue  # no probe: the next try shows whether it is fixed
            if probe():
                self.resolve(kind)
            else:
                self.report(entry.fault)
                return True
        return False

    def check(self, kinds: tuple[FaultKind, ...]) -> Fault | None:
        """Run the probes of ``kinds`` now; report and return the first failing one."""
        for kind in kinds:
            probe = self._probes.get(kind)
            if probe is not None and not probe():
                fault = Fault(kind, f"the {kind.value} folder cannot be written",
                              "free space or make it writable")
                self.report(fault)
                return fault
        return None

    def next_try_in(self) -> float | None:
        """Seconds to the earliest retry, or None without faults."""
        entries = [e for _k, e in self.snapshot()]
        if not entries:
            return None
        return max(0.0, min(e.next_try for e in entries) - self._clock())

    def snapshot(self) -> list[tuple[FaultKind, _Active]]:
        with self._lock:
            return list(self._active.items())

    def active(self) -> list[Fault]:
        return [e.fault for _k, e in self.snapshot()]

    def _notify(self, title: str, body: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier(title, body)
        except Exception:  # a notification is a courtesy
            log.exception("notification failed")
