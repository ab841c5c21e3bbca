"""What every backend remembers of commit records, written once for all of them.

A won commit never changes attempt, so a backend keeps the record it read or wrote and uses it
for the job's ``get_result`` and ``discard`` instead of reading it again; ``committed`` always
reads afresh (another machine may have committed since).
"""

from __future__ import annotations

from collections.abc import Callable

from watcher.storage.layout import CommitRecord

ReadRecord = Callable[[str], CommitRecord | None]  # the backend's read of a job's record


class CommitCache:
    """One backend's known commit records, by job key."""

    def __init__(self, read: ReadRecord) -> None:
        self._read = read
        self._records: dict[str, CommitRecord] = {}

    def committed(self, job_key: str) -> tuple[int, dict[str, str]] | None:
        """``Storage.committed``: the committed attempt and manifest, or None."""
        record = self._read(job_key)
        if record is None:
            return None
        self._records[job_key] = record
        return record.attempt, dict(record.manifest)

    def known(self, job_key: str) -> CommitRecord | None:
        """The remembered record, else the stored one (None if the job has not committed)."""
        return self._records.get(job_key) or self._read(job_key)

    def remember(self, job_key: str, record: CommitRecord) -> None:
        self._records[job_key] = record

    def forget(self, job_key: str) -> None:
        self._records.pop(job_key, None)
