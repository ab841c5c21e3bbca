"""Where things live in shared storage, and the commit record; one layout for every backend.

    blobs/<first two hex digits>/<sha256>     payloads, content-addressed
    results/<job key>/<attempt>/<name>        staged results of one attempt
    commits/<job key>.json                    the commit record: created once, first wins

Keys are relative, '/'-separated: an S3 key as is, a path under the shared folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from watcher.storage.errors import ResultsDiscardedError, StorageError

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Characters SMB shares, Windows servers or S3 tooling reject or treat specially in names.
_FORBIDDEN = frozenset('/\\:*?"<>|')
MAX_NAME = 200  # bytes of UTF-8: a file name may have 255 ("<job key>.json" must fit too)


def check_digest(digest: str) -> str:
    """``digest`` if it is a lowercase sha256 hex string."""
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise StorageError(
            f"{digest!r} is not a sha256 digest (64 lowercase hex digits)",
            fix="pass the value put_blob / put_result returned",
        )
    return digest


def check_name(value: str, what: str) -> str:
    """``value`` if it is safe as one path component on every backend (job key, result name).

    Hidden names (leading '.') are refused: the folder backend's temp files use them.
    """
    bad = (
        not isinstance(value, str)
        or not value
        or len(value.encode("utf-8", "surrogatepass")) > MAX_NAME
        or value[0] in ". "
        or value[-1] in ". "
        or any(c in _FORBIDDEN or ord(c) < 32 or ord(c) == 127 for c in value)
    )
    if bad:
        raise StorageError(
            f"{value!r} is not usable as a {what} in shared storage",
            fix=f"use a {what} of 1-{MAX_NAME} bytes without / \\ : * ? \" < > |, control "
            "characters, or a leading '.', or leading/trailing spaces",
        )
    return value


def check_attempt(attempt: int) -> int:
    """``attempt`` if it is a positive integer."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise StorageError(f"attempt {attempt!r} is not a positive integer")
    return attempt


def blob_key(digest: str) -> str:
    """The key of the blob with this sha256."""
    check_digest(digest)
    return f"blobs/{digest[:2]}/{digest}"


def job_prefix(job_key: str) -> str:
    """The prefix holding every staged result of a job (all attempts)."""
    return f"results/{check_name(job_key, 'job key')}/"


def attempt_prefix(job_key: str, attempt: int) -> str:
    """The prefix holding the staged results of one attempt."""
    return f"{job_prefix(job_key)}{check_attempt(attempt)}/"


def result_key(job_key: str, attempt: int, name: str) -> str:
    """The key of one staged result."""
    return attempt_prefix(job_key, attempt) + check_name(name, "result name")


def commit_key(job_key: str) -> str:
    """The key of the job's commit record."""
    return f"commits/{check_name(job_key, 'job key')}.json"


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """Which attempt of a job won, with its manifest (result name -> sha256)."""

    job_key: str
    attempt: int
    manifest: dict[str, str]
    discarded: bool = False  # the results were copied to the outbox and removed

    def encode(self) -> bytes:
        """The record as the bytes stored under ``commit_key``."""
        body = {
            "job": self.job_key,
            "attempt": self.attempt,
            "manifest": self.manifest,
            "discarded": self.discarded,
        }
        return json.dumps(body, sort_keys=True).encode("utf-8")


def check_manifest(manifest: dict[str, str]) -> dict[str, str]:
    """A copy of ``manifest`` if every name is usable and every value a sha256."""
    if not isinstance(manifest, dict):
        raise StorageError("a commit manifest must map result names to sha256 digests")
    return {check_name(n, "result name"): check_digest(d) for n, d in manifest.items()}


def decode_commit(data: bytes) -> CommitRecord | None:
    """The record in ``data``, or None if it is empty or unreadable (still being written)."""
    try:
        body = json.loads(data.decode("utf-8"))
        record = CommitRecord(
            job_key=str(body["job"]),
            attempt=check_attempt(body["attempt"]),
            manifest=check_manifest(body["manifest"]),
            discarded=bool(body.get("discarded", False)),
        )
    except (ValueError, KeyError, TypeError, StorageError):
        return None
    return record


def damaged_commit(where: str, job_key: str) -> StorageError:
    """The error for a commit record that stays empty or unreadable."""
    return StorageError(
        f"the commit record of job {job_key!r} is empty or damaged",
        fix="a machine probably crashed while committing this job; delete the record so the "
        "job can commit again",
        file=where,
    )

def expected_digest(
    record: CommitRecord | None, job_key: str, attempt: int, name: str, where: str
) -> str:
    """The manifest digest of a committed result; StorageError if it cannot be read."""
    if record is None or record.attempt != attempt:
        won = "no attempt" if record is None else f"attempt {record.attempt}"
        raise StorageError(
            f"attempt {attempt} of job {job_key!r} is not committed ({won} is)",
            fix="read results only of the attempt commit_result / committed returned",
            file=where,
        )
    if record.discarded:
        raise ResultsDiscardedError(
            f"the results of job {job_key!r} were already copied out and discarded",
            fix="the job is finished; look in the outbox",
            file=where,
        )
    if name not in record.manifest:
        raise StorageError(
            f"job {job_key!r} attempt {attempt} committed no result named {name!r}",
            fix=f"results committed: {', '.join(sorted(record.manifest)) or 'none'}",
            file=where,
        )
    return record.manifest[name]
