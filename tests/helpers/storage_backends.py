"""The storage backends the shared tests run on, as picklable specs (processes open them too).

Each spec opens a fresh handle, as another machine would, and can overwrite or read the raw
bytes under a key, behind the backend's back, to corrupt objects or check what is stored.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.storage.folder import ClaimMethod, open_folder
from watcher.storage.protocol import Storage
from watcher.storage.transfer import RetryPolicy

REGION = "us-east-1"


@dataclass(frozen=True)
class FolderBackend:
    """A folder backend on a local temp dir, with a fixed claim method."""

    root: Path
    claim: ClaimMethod
    handles: list[Storage] = field(default_factory=list, compare=False)

    def open(self, retry: RetryPolicy | None = None) -> Storage:
        self.handles.append(open_folder(self.root, claim=self.claim, retry=retry))
        return self.handles[-1]

    def overwrite(self, key: str, data: bytes) -> None:
        self.root.joinpath(*key.split("/")).write_bytes(data)

    def read(self, key: str) -> bytes | None:
        path = self.root.joinpath(*key.split("/"))
        return path.read_bytes() if path.is_file() else None


@dataclass(frozen=True)
class S3Backend:
    """An S3 backend on a bucket of the local test server."""

    url: str
    bucket: str
    handles: list[Storage] = field(default_factory=list, compare=False)

    def open(self, retry: RetryPolicy | None = None) -> Storage:
        from watcher.storage.s3 import open_s3

        storage = open_s3(self.bucket, url=self.url, region=REGION, retry=retry, session=_session())
        self.handles.append(storage)
        return storage

    def _client(self) -> Any:
        import boto3

        return contextlib.closing(boto3.client("s3", endpoint_url=self.url, region_name=REGION))

    def overwrite(self, key: str, data: bytes) -> None:
        with self._client() as client:
            client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read(self, key: str) -> bytes | None:
        with self._client() as client:
            try:
                return bytes(client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            except client.exceptions.NoSuchKey:
                return None


Backend = FolderBackend | S3Backend


def close_handles(backend: Backend) -> None:
    """Close every handle the test opened (their connections to the server)."""
    while backend.handles:
        backend.handles.pop().close()


@functools.cache
def _session() -> Any:
    """One boto3 session per test process: each handle still gets its own client, but the
    service model is loaded once (a fresh session takes a quarter of a second)."""
    import boto3

    return boto3.session.Session()


def commit_in_process(
    backend: Backend, job: str, attempt: int, payload: bytes, barrier: Any, out: Any
) -> None:
    """One racer of the commit race, run in its own process: stage, wait for all, commit."""
    storage = backend.open()
    src = Path(out) / f"src-{attempt}.bin"
    src.write_bytes(payload)
    digest = storage.put_result(job, attempt, "out.bin", src)
    barrier.wait(timeout=60)
    winner = storage.commit_result(job, attempt, {"out.bin": digest})
    (Path(out) / f"winner-{attempt}.txt").write_text(str(winner))
    close_handles(backend)


def race_in_processes(backend: Backend, job: str, racers: int, out: Path) -> list[int]:
    """Commit ``racers`` attempts of ``job`` from as many spawned processes at once."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(racers)
    procs = [
        ctx.Process(
            target=commit_in_process,
            args=(backend, job, n, f"attempt {n}".encode() * 100, barrier, str(out)),
        )
        for n in range(1, racers + 1)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=90)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [p.exitcode for p in procs] == [0] * racers
    return [int((out / f"winner-{n}.txt").read_text()) for n in range(1, racers + 1)]
