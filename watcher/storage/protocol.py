"""The ``Storage`` seam: what a fleet of machines shares, whatever holds the bytes.

Payloads (face, audio, driving clip) are blobs stored by sha256, so a file already stored is
never uploaded again. Results are staged under a key unique to job + attempt and then committed:
the first commit of a job wins, atomically, so a redelivered job can never produce two outbox
entries. Every read is checked against the sha256 it was stored under.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from watcher.storage.stats import StorageStats


class Storage(Protocol):
    """Shared storage for payloads and results; every backend passes tests/test_storage.py."""

    stats: StorageStats

    def put_blob(self, src: Path) -> str:
        """Store ``src`` under its sha256 (hex, returned); skipped if that blob is stored."""
        ...

    def has_blob(self, digest: str) -> bool:
        """Whether the blob with this sha256 is stored."""
        ...

    def get_blob(self, digest: str, dest: Path) -> None:
        """Write the blob to ``dest``, verified against its sha256.

        ``dest`` appears by rename, complete, but is not fsynced: it is a worker's scratch
        input, fetched again after a crash.

        A mismatch discards the copy and downloads again; a blob still corrupt after the last
        try is removed from storage (so the next ``put_blob`` stores it afresh) and a
        ``StorageError`` names it.
        """
        ...

    def put_result(self, job_key: str, attempt: int, name: str, src: Path) -> str:
        """Stage one result file of this job attempt; returns its sha256 for the manifest."""
        ...

    def commit_result(self, job_key: str, attempt: int, manifest: dict[str, str]) -> int:
        """Commit an attempt's staged results (``manifest``: result name -> sha256).

        The first commit of a job wins, atomically across machines; every caller gets the
        winning attempt back. A loser's staged results are removed.
        """
        ...

    def committed(self, job_key: str) -> tuple[int, dict[str, str]] | None:
        """The committed attempt and its manifest, or None if no attempt committed yet."""
        ...

    def get_result(self, job_key: str, attempt: int, name: str, dest: Path) -> None:
        """Write one committed result to ``dest``, verified against the manifest.

        ``dest`` appears by rename, fsynced with its folder: it may be the only copy once the
        job is discarded.
        """
        ...

    def close(self) -> None:
        """Release connections (the handle is not used afterwards)."""
        ...

    def discard(self, job_key: str) -> None:
        """Drop the job's results once the intake copied them to the outbox.

        The commit record stays behind, marked discarded, so a late attempt of the job still
        loses its commit.
        """
        ...
