"""A worker's private scratch area: ``<cache>/fleet-work/<worker id>/``, nothing left behind.

Each attempt fetches its inputs and renders into ``<worker dir>/<key>.<attempt>/``. A worker
killed mid-job cannot clean up, so the area is kept bounded by ownership instead: a worker holds
an exclusive ``flock`` on ``<worker dir>/.lock`` for its whole life, and on start removes every
sibling folder whose lock it can take (its worker is gone), plus anything loose left by older
versions. Before and after each attempt it empties its own folder, so at any time there is at
most one attempt's scratch per *live* worker, and none for a dead one once any worker on the
machine starts again. Several workers on one machine (one per GPU) never touch each other's.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from watcher.filetree import remove_tree

log = logging.getLogger("facedrop.fleet.worker")

LOCK = ".lock"


class Scratch:
    """``open`` at worker start, ``attempt`` per job, ``close`` at exit."""

    def __init__(self, root: Path, ident: str) -> None:
        self.root = root
        self.own = root / _safe(ident)
        self._fd: int | None = None

    def open(self) -> None:
        """Take this worker's folder and remove what dead workers left.

        A cache that cannot be written is not fatal here: the first attempt meets the same
        error, and the worker gives its job back and says why (a fault, not a crash).
        """
        try:
            self.own.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.own / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            log.warning("cannot use the scratch folder %s (%s)", self.own, err.strerror)
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self.sweep()

    def sweep(self) -> int:
        """Remove dead workers' folders, loose leftovers and this worker's old attempts."""
        removed = 0
        for path in _entries(self.root):
            if path == self.own:
                continue
            if path.is_dir() and not path.is_symlink() and (path / LOCK).exists():
                if not _take(path / LOCK):
                    continue  # a live worker's
            try:
                remove_tree(path)
            except OSError:  # another worker starting at the same moment took it first
                continue
            removed += 1
        removed += self.empty()
        if removed:
            log.info("removed %d scratch folder(s) that stopped or killed jobs left", removed)
        return removed

    def empty(self) -> int:
        """Remove every attempt folder of this worker (before and after each attempt)."""
        gone = 0
        for path in _entries(self.own):
            if path.name != LOCK:
                remove_tree(path)
                gone += 1
        return gone

    def attempt(self, key: str, attempt: int) -> Path:
        return self.own / f"{key}.{attempt}"

    def close(self) -> None:
        if self._fd is not None:
            remove_tree(self.own)  # while the lock is held: no sweeper races this
            os.close(self._fd)
            self._fd = None


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _take(lock: Path) -> bool:
    """Can this lock be taken (its worker is dead)? Released again at once."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases the lock
    return True


def _safe(ident: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in ident)[:120] or "worker"
