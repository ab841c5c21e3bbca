"""``open_storage``: the configured backend, checked before the first job uses it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.storage.errors import StorageError
from watcher.storage.folder import open_folder
from watcher.storage.protocol import Storage
from watcher.storage.settings import StorageBackend, StorageSettings
from watcher.storage.transfer import RetryPolicy

if TYPE_CHECKING:
    from watcher.config import Config


def open_storage(config: Config | StorageSettings, *, retry: RetryPolicy | None = None) -> Storage:
    """Open the shared storage ``config`` (or its ``storage`` section) names.

    Raises ``StorageError`` when it cannot be used: folder missing or read-only, bucket
    missing, credentials missing, a store without conditional writes.
    """
    settings = config if isinstance(config, StorageSettings) else config.storage
    if settings.backend is StorageBackend.S3:
        from watcher.storage.s3 import open_s3  # boto3 loads only where S3 is configured

        return open_s3(settings.bucket, url=settings.url, region=settings.region, retry=retry)
    if settings.path is None:
        raise StorageError(
            "storage.path is not set",
            fix="set storage.path to a folder every machine mounts (SMB or NFS), or use "
            "storage.backend: s3",
        )
    return open_folder(settings.path, retry=retry)
