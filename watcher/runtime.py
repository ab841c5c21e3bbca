"""``<state>/daemon.json``: what the running daemon knows that the queue does not.

Paused reasons (environment faults) and, per inbox entry, why it waits or is ignored. The file
is preallocated once and then overwritten in place, so the daemon can keep it current even when
the state disk is full; a reader that catches a write half-way simply reads again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from watcher.faults import Fault
from watcher.inbox_scan import InboxEntry

RUNTIME_NAME = "daemon.json"
SIZE = 256 * 1024
MAX_ENTRIES = 500  # inbox entries listed; more are counted


class RuntimeFile:
    """The writer side, owned by the daemon's loop."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / RUNTIME_NAME
        self._fd: int | None = None
        self._last = b""

    def open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < SIZE:
                os.posix_fallocate(fd, 0, SIZE)
        except (OSError, AttributeError):
            pass  # no room or no fallocate: writes below may still fit
        self._fd = fd

    def write(self, faults: list[Fault], verdicts: list[InboxEntry]) -> None:
        """Record the current paused reasons and inbox verdicts (only when they changed)."""
        if self._fd is None:
            self.open()
            if self._fd is None:
                return
        core = render(os.getpid(), faults, verdicts, 0.0)
        if core == self._last:
            return
        data = render(os.getpid(), faults, verdicts, time.time())
        body = data + b" " * max(0, SIZE - len(data))  # the same size every time: no new blocks
        try:
            os.pwrite(self._fd, body[:SIZE] if len(data) <= SIZE else data, 0)
        except OSError:
            return
        self._last = core

    def close(self, *, remove: bool = True) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)


def render(pid: int, faults: list[Fault], verdicts: list[InboxEntry], now: float) -> bytes:
    data = {
        "pid": pid,
        "updated": now,
        "paused": [{"kind": f.kind.value, "reason": f.reason, "fix": f.fix} for f in faults],
        "inbox": [
            {"name": v.name, "verdict": v.verdict.value, "reason": v.reason}
            for v in verdicts[:MAX_ENTRIES]
        ],
        "inbox_more": max(0, len(verdicts) - MAX_ENTRIES),
    }
    return json.dumps(data, sort_keys=True).encode()


def read_runtime(state_dir: Path, tries: int = 5) -> dict[str, Any] | None:
    """The daemon's runtime file, or None if there is none (or it cannot be parsed)."""
    for _ in range(tries):
        try:
            text = (state_dir / RUNTIME_NAME).read_bytes().decode("utf-8", "replace").strip()
        except OSError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            time.sleep(0.02)  # caught a write half-way
            continue
        return data if isinstance(data, dict) else None
    return None
