"""The S3 backend: any S3-compatible object store (AWS S3, MinIO, R2, Ceph) through boto3.

Credentials come only from boto3's normal chain: the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...) or ~/.aws/credentials and ~/.aws/config; never from
facedrop's config or a job.yaml. The first commit of a job wins by a conditional put
(``If-None-Match: *``): the store creates the record only if no record exists, in one atomic
step. ``open_s3`` checks that the store honours it, since one that ignored it would let two
machines commit the same job.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from pipeline.digest import sha256_file
from watcher.storage import layout
from watcher.storage.commits import CommitCache
from watcher.storage.errors import CorruptObjectError, StorageError
from watcher.storage.layout import CommitRecord
from watcher.storage.stats import StorageStats
from watcher.storage.transfer import (
    CHUNK,
    Download,
    Landing,
    RetryPolicy,
    fetch_verified,
    local_file_error,
    write_hashed,
)

CONFLICT_TRIES = 5  # AWS answers 409 to simultaneous conditional puts; the loser retries
CONFLICT_WAIT = 0.1
DELETE_BATCH = 1000  # DeleteObjects' limit
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
NO_CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in facedrop's "
    "environment (a LaunchAgent: its EnvironmentVariables) or run `aws configure` to write "
    "~/.aws/credentials; facedrop never reads credentials from its config or job.yaml"
)


def open_s3(
    bucket: str,
    *,
    url: str = "",
    region: str = "",
    retry: RetryPolicy | None = None,
    session: Any = None,
) -> S3Storage:
    """A checked ``S3Storage``: the bucket exists, credentials work, conditional puts hold."""
    session = session or boto3.session.Session()
    client = session.client(
        "s3",
        endpoint_url=url or None,
        region_name=region or None,
        config=BotoConfig(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"} if url else {},  # MinIO & co. serve path style
            # Checksums only where S3 requires them: stores other than AWS reject some of
            # boto3's newer default ones; every read is verified by sha256 anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    storage = S3Storage(client, bucket, endpoint=url or "AWS S3", retry=retry)
    try:
        storage.check()
    except BaseException:
        storage.close()
        raise
    return storage


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """``Storage`` in one bucket of an S3-compatible store."""

    def __init__(
        self, client: Any, bucket: str, *, endpoint: str, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self.stats = StorageStats()
        self._commits = CommitCache(self._read_record)

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()

    def _where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    @contextlib.contextmanager
    def _errors(self, key: str = "") -> Iterator[None]:
        """Turn boto3 failures into StorageErrors that say what to do."""
        try:
            yield
        except (ClientError, BotoCoreError) as err:
            raise self._translate(err, key) from err
        except OSError as err:  # this machine's file (a download's copy, an upload's source)
            raise local_file_error(err) from err

    def _translate(self, err: Exception, key: str) -> StorageError:  # noqa: C901 - one table
        where = self._where(key)
        if isinstance(err, NoCredentialsError | PartialCredentialsError):
            return StorageError("no S3 credentials were found", fix=NO_CREDENTIALS_FIX, file=where)
        if isinstance(err, EndpointConnectionError | ConnectTimeoutError):
            return StorageError(
                f"cannot reach the S3 store at {self.endpoint}",
                fix="check storage.url, and that the store is running and reachable from this "
                "machine",
                file=where,
            )
        code = _code(err) if isinstance(err, ClientError) else ""
        if code == "NoSuchBucket" or (code in NOT_FOUND and not key):
            return StorageError(
                f"the bucket {self.bucket!r} does not exist at {self.endpoint}",
                fix=f"create it (aws s3 mb s3://{self.bucket}"
                + (f" --endpoint-url {self.endpoint})" if "://" in self.endpoint else ")")
                + " or correct storage.bucket / storage.url",
                file=where,
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return StorageError(
                f"the S3 store refused the credentials ({code})",
                fix="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile in use",
                file=where,
            )
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return StorageError(
                f"the S3 credentials may not use bucket {self.bucket!r} ({code})",
                fix="allow s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it",
                file=where,
            )
        return StorageError(
            f"an S3 request failed: {err}",
            fix=f"check that the store at {self.endpoint} is healthy, then retry",
            file=where,
        )

    # --- checks ------------------------------------------------------------------------------

    def check(self) -> None:
        """The bucket is there, the credentials work, and conditional puts are honoured."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)
        key = f"_facedrop/probe-{secrets.token_hex(8)}"
        try:
            honoured = self._create(key, b"probe") and not self._create(key, b"probe")
        finally:
            with self._errors(key):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        if not honoured:
            raise self._no_conditional_puts(key)

    def _no_conditional_puts(self, key: str) -> StorageError:
        return StorageError(
            f"the S3 store at {self.endpoint} does not honour conditional writes "
            "(If-None-Match), so two machines could both commit the same job",
            fix="use a store that does (AWS S3, MinIO, Cloudflare R2, Ceph RGW 19+), or "
            "storage.backend: folder",
            file=self._where(key),
        )

    def _create(self, key: str, body: bytes) -> bool:
        """Put ``body`` at ``key`` unless an object is there; True if this call created it."""
        for _ in range(CONFLICT_TRIES):
            created = self._try_create(key, body)
            if created is not None:
                return created
            self.retry.sleep(CONFLICT_WAIT)
        raise StorageError(
            "the S3 store kept reporting conflicting writes",
            fix="retry; if it persists, check the store's health",
            file=self._where(key),
        )

    def _try_create(self, key: str, body: bytes) -> bool | None:
        """True: created; False: an object was there; None: a simultaneous write, try again."""
        with self._errors(key):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
                return True
            except ClientError as err:
                code = _code(err)
                if code == "PreconditionFailed":
                    return False
                if code == "ConditionalRequestConflict":
                    return None
                if code in ("NotImplemented", "501"):
                    raise self._no_conditional_puts(key) from err
                raise

    # --- blobs -------------------------------------------------------------------------------

    def _size(self, key: str) -> int | None:
        """The stored object's size, or None if there is none."""
        with self._errors(key):
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            except ClientError as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise

    def put_blob(self, src: Path) -> str:
        """Upload ``src`` under its sha256 unless a blob of that size is stored."""
        digest = sha256_file(src)
        size = src.stat().st_size
        key = layout.blob_key(digest)
        stored = self._size(key)
        if stored == size:
            self.stats.add(uploads_skipped=1)
            return digest
        # A stored blob of the wrong size is replaced; otherwise only created, so two machines
        # storing the same payload at once upload it once.
        condition = {"IfNoneMatch": "*"} if stored is None else {}
        with self._errors(key), src.open("rb") as body:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
            except ClientError as err:
                if _code(err) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                self.stats.add(uploads_skipped=1)
                return digest
        self.stats.add(blobs_uploaded=1, bytes_up=size)
        return digest

    def has_blob(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self._size(layout.blob_key(digest)) is not None

    def _download(self, key: str, missing: StorageError) -> Download:
        """A function writing the object to a local path (for ``fetch_verified``)."""

        def download(tmp: Path) -> tuple[str, int]:
            with self._errors(key):
                try:
                    response = self.client.get_object(Bucket=self.bucket, Key=key)
                except ClientError as err:
                    if _code(err) in NOT_FOUND:
                        raise missing from err
                    raise
                with contextlib.closing(response["Body"]) as body:  # also when writing fails
                    return write_hashed(body.iter_chunks(CHUNK), tmp)

        return download

    def get_blob(self, digest: str, dest: Path) -> None:
        """Download the blob to ``dest``, verified; a blob corrupt on every try is deleted."""
        key = layout.blob_key(digest)
        missing = StorageError(
            "the payload is not in shared storage",
            fix="submit the job again so the intake stores its files",
            file=self._where(key),
        )
        try:
            with self._errors(key):
                fetch_verified(
                    self._download(key, missing),
                    expected=digest,
                    dest=dest,
                    landing=Landing.SCRATCH,
                    where=self._where(key),
                    fix="the corrupt copy was removed from storage; submit the job again so "
                    "the intake stores the file afresh",
                    retry=self.retry,
                    stats=self.stats,
                )
        except CorruptObjectError:
            with self._errors(key):  # content-addressed: the next put_blob restores it
                self.client.delete_object(Bucket=self.bucket, Key=key)
            raise

    # --- results -----------------------------------------------------------------------------

    def put_result(self, job_key: str, attempt: int, name: str, src: Path) -> str:
        """Stage one result of this attempt; returns its sha256."""
        key = layout.result_key(job_key, attempt, name)
        digest = sha256_file(src)
        size = src.stat().st_size
        with self._errors(key), src.open("rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.stats.add(bytes_up=size)
        return digest

    def _list(self, prefix: str) -> list[str]:
        with self._errors(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def _delete_prefix(self, prefix: str) -> None:
        keys = self._list(prefix)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            with self._errors(prefix):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    def commit_result(self, job_key: str, attempt: int, manifest: dict[str, str]) -> int:
        """Claim the job's commit for this attempt; the first claim wins. Returns the winner."""
        attempt, manifest = layout.check_attempt(attempt), layout.check_manifest(manifest)
        record = CommitRecord(layout.check_name(job_key, "job key"), attempt, manifest)
        prefix = layout.attempt_prefix(job_key, attempt)
        staged = set(self._list(prefix))
        for name in manifest:
            if prefix + name not in staged:
                raise StorageError(
                    f"result {name!r} of job {job_key!r} attempt {attempt} was never stored, "
                    "so the attempt cannot be committed",
                    fix="put_result every file of the manifest before commit_result",
                    file=self._where(prefix + name),
                )
        key = layout.commit_key(job_key)
        winner = record if self._create(key, record.encode()) else self._read_record(job_key)
        if winner is None:
            raise layout.damaged_commit(self._where(key), job_key)
        self._commits.remember(job_key, winner)
        if winner.attempt != attempt:
            self._delete_prefix(prefix)
        return winner.attempt

    def _read_record(self, job_key: str) -> CommitRecord | None:
        key = layout.commit_key(job_key)
        with self._errors(key):
            try:
                data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise
        record = layout.decode_commit(data)
        if record is None:  # S3 puts are atomic: an unreadable record is a damaged one
            raise layout.damaged_commit(self._where(key), job_key)
        return record

    def committed(self, job_key: str) -> tuple[int, dict[str, str]] | None:
        """The committed attempt and manifest, or None."""
        return self._commits.committed(job_key)

    def get_result(self, job_key: str, attempt: int, name: str, dest: Path) -> None:
        """Download one committed result to ``dest``, verified against the manifest."""
        record = self._commits.known(job_key)
        key = layout.result_key(job_key, attempt, name)
        expected = layout.expected_digest(record, job_key, attempt, name, self._where(key))
        missing = StorageError(
            f"result {name!r} of job {job_key!r} is missing from shared storage",
            fix="the job's results were discarded or lost; run the job again",
            file=self._where(key),
        )
        with self._errors(key):
            fetch_verified(
                self._download(key, missing),
                expected=expected,
                dest=dest,
                landing=Landing.DURABLE,
                where=self._where(key),
                fix="the store damaged this result; run the job again",
                retry=self.retry,
                stats=self.stats,
            )

    def discard(self, job_key: str) -> None:
        """Delete the job's results; its commit record stays, marked discarded."""
        record = self._commits.known(job_key)
        if record is not None and not record.discarded:
            key = layout.commit_key(job_key)
            tombstone = CommitRecord(job_key, record.attempt, record.manifest, discarded=True)
            with self._errors(key):  # replaced in one step: the record never disappears
                self.client.put_object(Bucket=self.bucket, Key=key, Body=tombstone.encode())
        self._commits.forget(job_key)
        self._delete_prefix(layout.job_prefix(job_key))
