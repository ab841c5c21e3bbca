"""Counters of what a storage actually moved, so dedupe and refetches can be seen and tested."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class StorageStats:
    """Running totals for one storage handle (safe to update from several threads)."""

    blobs_uploaded: int = 0
    uploads_skipped: int = 0  # put_blob of a blob that was already stored
    bytes_up: int = 0  # blobs and results written
    bytes_down: int = 0  # blobs and results read, corrupt copies included
    refetches: int = 0  # downloads repeated after a sha256 mismatch
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        *,
        blobs_uploaded: int = 0,
        uploads_skipped: int = 0,
        bytes_up: int = 0,
        bytes_down: int = 0,
        refetches: int = 0,
    ) -> None:
        """Add to the counters atomically."""
        with self._lock:
            self.blobs_uploaded += blobs_uploaded
            self.uploads_skipped += uploads_skipped
            self.bytes_up += bytes_up
            self.bytes_down += bytes_down
            self.refetches += refetches

    def snapshot(self) -> dict[str, int]:
        """The counters as a plain dict (for logs, status and benchmarks)."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
