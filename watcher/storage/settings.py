"""Which shared storage the machines of a fleet use: the validated ``storage`` config section."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class StorageBackend(StrEnum):
    """Where payloads and results live when several machines share the work."""

    FOLDER = "folder"  # a folder every machine mounts (SMB, NFS)
    S3 = "s3"  # any S3-compatible object store, through boto3


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The ``storage`` section. S3 credentials are never here: boto3 reads them from the
    environment or the AWS config files."""

    backend: StorageBackend
    path: Path | None  # folder backend: the mounted share; None until configured
    url: str  # s3: endpoint URL ("" = AWS itself)
    bucket: str  # s3: bucket name
    region: str  # s3: region ("" = from the AWS environment / config files)
