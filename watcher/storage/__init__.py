"""Shared storage for a fleet of machines: content-addressed payloads, committed results.

``open_storage(config)`` returns a ``Storage`` (``protocol.py``): a folder every machine mounts
(``folder.py``) or an S3-compatible bucket (``s3.py``).
"""

from watcher.storage.errors import CorruptObjectError, ResultsDiscardedError, StorageError
from watcher.storage.factory import open_storage
from watcher.storage.protocol import Storage
from watcher.storage.settings import StorageBackend, StorageSettings
from watcher.storage.stats import StorageStats
from watcher.storage.transfer import RetryPolicy

__all__ = [
    "CorruptObjectError",
    "ResultsDiscardedError",
    "RetryPolicy",
    "Storage",
    "StorageBackend",
    "StorageError",
    "StorageSettings",
    "StorageStats",
    "open_storage",
]
