"""The one error type of the storage seam: what went wrong, which object, how to fix it."""

from __future__ import annotations

from pipeline.errors import FacedropError


class StorageError(FacedropError):
    """Shared storage (a mounted folder or an S3 bucket) refused, lost or corrupted something.

    ``file`` names the object (a path in the shared folder, or ``s3://bucket/key``).
    """

    exit_code = 6
    title = "Shared storage problem"


class CorruptObjectError(StorageError):
    """A stored object's bytes do not hash to the sha256 it is stored under."""


class ResultsDiscardedError(StorageError):
    """The job's results were copied to the outbox and discarded: the job is finished.

    An intake that restarts between discarding and recording the job as done gets this, and
    can record it as done.
    """
