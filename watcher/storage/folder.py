"""The folder backend: a directory every machine mounts (SMB, NFS) or a local one.

Every file in the share appears by rename of a complete, fsynced hidden temp file, so no
machine ever reads half of one (only the discard mark skips the fsync: see ``discard``).
The commit record is claimed with ``link()`` of a complete temp file (fails if the name
exists: atomic on local filesystems, NFS and SMB servers with hard links), or, where the share
has no hard links (macOS smbfs), with ``O_CREAT | O_EXCL``; a reader that finds that record
still empty waits for its writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from pipeline.atomic import copy_file_atomic, fsync_dir, temp_name, write_bytes_atomic
from pipeline.digest import sha256_file
from watcher.storage import layout
from watcher.storage.commits import CommitCache
from watcher.storage.errors import CorruptObjectError, StorageError
from watcher.storage.layout import CommitRecord
from watcher.storage.stats import StorageStats
from watcher.storage.transfer import (
    Landing,
    RetryPolicy,
    fetch_verified,
    file_chunks,
    fsync_file,
    local_file_error,
    write_hashed,
)

NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})
EMPTY_RECORD_TRIES = 20  # x EMPTY_RECORD_WAIT: how long a reader waits for a record's writer
EMPTY_RECORD_WAIT = 0.05


class ClaimMethod(Enum):
    """How the first commit of a job is made exclusive."""

    HARD_LINK = "hard link"  # the record appears complete, in one step
    EXCLUSIVE_CREATE = "exclusive create"  # for shares without hard links


def open_folder(
    root: Path, *, claim: ClaimMethod | None = None, retry: RetryPolicy | None = None
) -> FolderStorage:
    """Check the shared folder is there and writable, then use it (``claim``: probed if None).

    The folder itself is never created: a missing one usually means the share is not mounted,
    and creating it would split the fleet's storage in two.
    """
    root = Path(root)
    with _os_errors(root):
        exists, is_dir = root.exists(), root.is_dir()
    if not exists:
        raise StorageError(
            "the shared storage folder does not exist (is the share mounted on this machine?)",
            fix="mount the share (Finder > Go > Connect to Server, or /etc/fstab) or correct "
            "storage.path; facedrop never creates it, so an unmounted share is not mistaken "
            "for an empty one",
            file=root,
        )
    if not is_dir:
        raise StorageError(
            "storage.path is not a folder", fix="point storage.path at the mounted share", file=root
        )
    probed = _probe(root)
    return FolderStorage(root, claim=claim or probed, retry=retry)


def _probe(root: Path) -> ClaimMethod:
    """Write, link and delete a probe file; the claim method the share supports."""
    probe = root / f".facedrop-probe.{secrets.token_hex(4)}.tmp"
    linked = probe.with_name(probe.name + ".link")
    try:
        with _os_errors(root):
            write_bytes_atomic(probe, b"facedrop storage probe\n")
        try:
            os.link(probe, linked)
        except OSError as err:
            if err.errno not in NO_LINKS:
                raise _translate(err, root) from err
            return ClaimMethod.EXCLUSIVE_CREATE
        return ClaimMethod.HARD_LINK
    finally:
        linked.unlink(missing_ok=True)
        probe.unlink(missing_ok=True)


@contextlib.contextmanager
def _os_errors(where: Path, root: Path | None = None) -> Iterator[None]:
    """Turn OS errors into StorageErrors that say what to do (local ones: outside ``root``)."""
    try:
        yield
    except OSError as err:
        raise _translate(err, where, root) from err


def _translate(err: OSError, where: Path, root: Path | None = None) -> StorageError:
    if root is not None and err.filename and not Path(err.filename).is_relative_to(root):
        return local_file_error(err)  # this machine's copy failed, not the share
    if isinstance(err, PermissionError) or err.errno == errno.EROFS:
        return StorageError(
            f"cannot write to the shared storage folder ({err.strerror})",
            fix="give this user write access to the share (permissions or ACL on the server) "
            "and mount it read-write",
            file=where,
        )
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            "the shared storage folder is full",
            fix="free space on the share, or discard old results",
            file=where,
        )
    return StorageError(
        f"the shared storage folder failed ({err.strerror or err})",
        fix="check that the share is still mounted and reachable from this machine",
        file=where,
    )


class FolderStorage:
    """``Storage`` in a folder; safe with concurrent writers on several machines."""

    def __init__(
        self, root: Path, *, claim: ClaimMethod, retry: RetryPolicy | None = None
    ) -> None:
        self.root = Path(root)
        self.claim = claim
        self.retry = retry or RetryPolicy()
        self.stats = StorageStats()
        self._commits = CommitCache(self._read_record)

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    # --- blobs -----------------------------------------------------------------------------

    def put_blob(self, src: Path) -> str:
        """Store ``src`` under its sha256; skipped when a blob of that size is stored."""
        digest = sha256_file(src)
        size = src.stat().st_size
        path = self._path(layout.blob_key(digest))
        with _os_errors(path, self.root):
            try:
                if path.stat().st_size == size:
                    self.stats.add(uploads_skipped=1)
                    return digest
            except FileNotFoundError:
                pass
            path.parent.mkdir(parents=True, exist_ok=True)
            copy_file_atomic(src, path)  # also replaces a stored copy of the wrong size
        self.stats.add(blobs_uploaded=1, bytes_up=size)
        return digest

    def has_blob(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self._path(layout.blob_key(digest)).is_file()

    def get_blob(self, digest: str, dest: Path) -> None:
        """Copy the blob to ``dest``, verified; a blob corrupt on every try is removed."""
        path = self._path(layout.blob_key(digest))
        if not path.is_file():
            raise StorageError(
                "the payload is not in shared storage",
                fix="submit the job again so the intake stores its files",
                file=path,
            )
        try:
            with _os_errors(path, self.root):
                fetch_verified(
                    lambda tmp: write_hashed(file_chunks(path), tmp),
                    expected=digest,
                    dest=dest,
                    landing=Landing.SCRATCH,
                    where=str(path),
                    fix="the corrupt copy was removed from storage; submit the job again so "
                    "the intake stores the file afresh",
                    retry=self.retry,
                    stats=self.stats,
                )
        except CorruptObjectError:
            path.unlink(missing_ok=True)  # content-addressed: the next put_blob restores it
            raise

    # --- results ---------------------------------------------------------------------------

    def put_result(self, job_key: str, attempt: int, name: str, src: Path) -> str:
        """Stage one result of this attempt; returns its sha256."""
        path = self._path(layout.result_key(job_key, attempt, name))
        with _os_errors(path, self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_name(path)
            try:
                digest, size = write_hashed(file_chunks(src), tmp)
                fsync_file(tmp)
                os.replace(tmp, path)  # the folder is fsynced once, by commit_result
            finally:
                tmp.unlink(missing_ok=True)
        self.stats.add(bytes_up=size)
        return digest

    def commit_result(self, job_key: str, attempt: int, manifest: dict[str, str]) -> int:
        """Claim the job's commit for this attempt; the first claim wins. Returns the winner."""
        attempt, manifest = layout.check_attempt(attempt), layout.check_manifest(manifest)
        record = CommitRecord(layout.check_name(job_key, "job key"), attempt, manifest)
        self._check_staged(record)
        marker = self._path(layout.commit_key(job_key))
        staged = self._path(layout.attempt_prefix(job_key, attempt))
        with _os_errors(marker):
            fsync_dir(staged)  # the staged names are on disk before the commit points at them
            fsync_dir(staged.parent)
            marker.parent.mkdir(parents=True, exist_ok=True)
            won = self._claim(marker, record.encode())
        winner = record if won else self._read_record(job_key)
        if winner is None:
            raise layout.damaged_commit(str(marker), job_key)
        self._commits.remember(job_key, winner)
        if winner.attempt != record.attempt:
            self._remove_tree(self._path(layout.attempt_prefix(job_key, attempt)))
        return winner.attempt

    def _check_staged(self, record: CommitRecord) -> None:
        for name in record.manifest:
            path = self._path(layout.result_key(record.job_key, record.attempt, name))
            if not path.is_file():
                raise StorageError(
                    f"result {name!r} of job {record.job_key!r} attempt {record.attempt} was "
                    "never stored, so the attempt cannot be committed",
                    fix="put_result every file of the manifest before commit_result",
                    file=path,
                )

    def _claim(self, marker: Path, data: bytes) -> bool:
        """Create ``marker`` holding ``data`` unless it exists; True if this call created it."""
        if self.claim is ClaimMethod.EXCLUSIVE_CREATE:
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(marker.parent)
            return True
        tmp = temp_name(marker)
        try:
            write_bytes_atomic(tmp, data)
            os.link(tmp, marker)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(marker.parent)
        return True

    def _read_record(self, job_key: str) -> CommitRecord | None:
        """The commit record, waiting briefly for one that is still being written."""
        marker = self._path(layout.commit_key(job_key))
        for _ in range(EMPTY_RECORD_TRIES):
            with _os_errors(marker):
                try:
                    data = marker.read_bytes()
                except FileNotFoundError:
                    return None
            record = layout.decode_commit(data)
            if record is not None:
                return record
            self.retry.sleep(EMPTY_RECORD_WAIT)
        raise layout.damaged_commit(str(marker), job_key)

    def committed(self, job_key: str) -> tuple[int, dict[str, str]] | None:
        """The committed attempt and manifest, or None."""
        return self._commits.committed(job_key)

    def get_result(self, job_key: str, attempt: int, name: str, dest: Path) -> None:
        """Copy one committed result to ``dest``, verified against the manifest."""
        record = self._commits.known(job_key)
        path = self._path(layout.result_key(job_key, attempt, name))
        expected = layout.expected_digest(record, job_key, attempt, name, str(path))
        if not path.is_file():
            raise StorageError(
                f"result {name!r} of job {job_key!r} is missing from shared storage",
                fix="the job's results were discarded or lost; run the job again",
                file=path,
            )
        with _os_errors(path, self.root):
            fetch_verified(
                lambda tmp: write_hashed(file_chunks(path), tmp),
                expected=expected,
                dest=dest,
                landing=Landing.DURABLE,
                where=str(path),
                fix="the shared folder damaged this result; run the job again",
                retry=self.retry,
                stats=self.stats,
            )

    def discard(self, job_key: str) -> None:
        """Remove the job's results; its commit record stays, marked discarded."""
        record = self._commits.known(job_key)
        marker = self._path(layout.commit_key(job_key))
        with _os_errors(marker):
            if record is not None and not record.discarded:
                tombstone = CommitRecord(job_key, record.attempt, record.manifest, discarded=True)
                # replaced, never absent; not fsynced: losing the mark in a crash only turns
                # "discarded" back into "committed", whose results are gone either way
                tmp = temp_name(marker)
                tmp.write_bytes(tombstone.encode())
                os.replace(tmp, marker)
        self._commits.forget(job_key)
        self._remove_tree(self._path(layout.job_prefix(job_key)))

    def _remove_tree(self, top: Path) -> None:
        """Delete ``top`` and everything in it, tolerating another machine deleting too."""
        with _os_errors(top):
            for folder, dirs, files in os.walk(top, topdown=False):
                for name in files:
                    Path(folder, name).unlink(missing_ok=True)
                for name in dirs:
                    with contextlib.suppress(FileNotFoundError):
                        Path(folder, name).rmdir()
            with contextlib.suppress(FileNotFoundError):
                top.rmdir()
