"""Moving bytes to a local file safely: hashed while written, verified, renamed into place.

A download is written to a hidden temp file beside ``dest`` and renamed only once its sha256
matches, so a half-downloaded or corrupt copy never looks like a finished file. Whether it is
also fsynced is the ``Landing``: an fsync costs a disk flush (about 5 ms on a loaded VM disk,
a server round trip on a share), so only copies that must outlive a crash pay it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pipeline.atomic import fsync_dir, temp_name
from watcher.storage.errors import CorruptObjectError, StorageError
from watcher.storage.stats import StorageStats

CHUNK = 1 << 20
log = logging.getLogger(__name__)

# Writes the object's bytes to the given local path; returns (sha256 hex, byte count).
Download = Callable[[Path], tuple[str, int]]


class Landing(Enum):
    """What a downloaded copy must survive."""

    DURABLE = "durable"  # fsynced with its folder: results bound for the outbox, which must
    # be safe on disk before the shared copy is discarded
    SCRATCH = "scratch"  # renamed into place only: a worker's input copy, verified by sha256
    # on every fetch and fetched again after a crash


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a download whose sha256 does not match is repeated, and the wait between.

    ``sleep`` is the clock boundary (tests inject one).
    """

    attempts: int = 3
    wait_seconds: float = 0.2  # doubles after each mismatch
    sleep: Callable[[float], None] = time.sleep


def file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of a local file, in 1 MiB chunks."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_hashed(chunks: Iterable[bytes], dest: Path) -> tuple[str, int]:
    """Write ``chunks`` to a new file ``dest`` (not fsynced); return its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as fh:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
    return digest.hexdigest(), size


def local_file_error(err: OSError) -> StorageError:
    """The error for this machine's own file failing (not the shared storage's)."""
    return StorageError(
        f"cannot write or read a local copy ({err.strerror or err})",
        fix="check the free space and permissions of this machine's work folder",
        file=err.filename,
    )


def corrupt_error(
    where: str, actual: str, expected: str, tries: int, fix: str
) -> CorruptObjectError:
    """The error for an object whose bytes do not hash to the digest it is stored under."""
    return CorruptObjectError(
        f"the stored object is corrupt: its bytes hash to {actual[:16]}..., not "
        f"{expected[:16]}... (downloaded {tries} time(s))",
        fix=fix,
        file=where,
    )


def fetch_verified(
    download: Download,
    *,
    expected: str,
    dest: Path,
    landing: Landing,
    where: str,
    fix: str,
    retry: RetryPolicy,
    stats: StorageStats,
) -> None:
    """Download into ``dest`` until the bytes hash to ``expected``; else raise CorruptObjectError.

    Each corrupt copy is deleted and counted as a refetch before the next try.
    """
    actual = ""
    for tries in range(1, retry.attempts + 1):
        tmp = temp_name(dest)
        try:
            actual, size = download(tmp)
            stats.add(bytes_down=size)
            if actual == expected:
                if landing is Landing.DURABLE:
                    fsync_file(tmp)
                os.replace(tmp, dest)
                if landing is Landing.DURABLE:
                    fsync_dir(dest.parent)
                return
        finally:
            tmp.unlink(missing_ok=True)
        log.warning(corrupt_error(where, actual, expected, tries, fix).user_message())
        if tries < retry.attempts:
            stats.add(refetches=1)
            retry.sleep(retry.wait_seconds * 2 ** (tries - 1))
    raise corrupt_error(where, actual, expected, retry.attempts, fix)
