"""The Storage seam: every backend passes the same tests (folder on a temp dir, S3 on a real
local S3 server over HTTP): payloads stored once, corrupt objects refused and fetched again,
first commit wins under concurrency, results round-trip, clear errors for a broken setup."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.helpers.s3_server import S3Server
from tests.helpers.storage_backends import (
    REGION,
    Backend,
    FolderBackend,
    S3Backend,
    close_handles,
    race_in_processes,
)
from tests.helpers.unprivileged import run_unprivileged
from watcher.storage import RetryPolicy, Storage, StorageError, open_storage
from watcher.storage.bench import measure_overhead
from watcher.storage.errors import CorruptObjectError, ResultsDiscardedError
from watcher.storage.folder import ClaimMethod, open_folder
from watcher.storage.layout import blob_key, commit_key, result_key
from watcher.storage.s3 import open_s3
from watcher.storage.settings import StorageBackend, StorageSettings

BACKENDS = ["folder-link", "folder-excl", "s3"]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """One real S3-compatible server (moto) on loopback for this module; each test a bucket."""
    with S3Server() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment, and nothing else AWS: no config files, no
    instance-metadata lookups (traffic stays on 127.0.0.1)."""
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _raw_client(server: S3Server) -> Any:
    return contextlib.closing(boto3.client("s3", endpoint_url=server.url, region_name=REGION))


def _new_bucket(server: S3Server) -> str:
    bucket = f"facedrop-{secrets.token_hex(6)}"
    with _raw_client(server) as client:
        client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store of each kind; the handles a test opens are closed after it."""
    store: Backend
    if request.param == "s3":
        request.getfixturevalue("aws_env")
        server: S3Server = request.getfixturevalue("s3_server")
        store = S3Backend(server.url, _new_bucket(server))
    else:
        root = tmp_path / "share"
        root.mkdir()
        claims = {"folder-link": ClaimMethod.HARD_LINK, "folder-excl": ClaimMethod.EXCLUSIVE_CREATE}
        store = FolderBackend(root, claims[request.param])
    yield store
    close_handles(store)


def _payload(path: Path, size: int, seed: int = 0) -> bytes:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    path.write_bytes(data)
    return data


def _no_sleep(_: float) -> None:
    pass


# --- blobs ------------------------------------------------------------------------------------


def test_payload_already_stored_is_not_uploaded_again(backend: Backend, tmp_path: Path) -> None:
    data = _payload(tmp_path / "face.jpg", 50_000)
    intake, other_machine = backend.open(), backend.open()

    digest = intake.put_blob(tmp_path / "face.jpg")
    assert digest == hashlib.sha256(data).hexdigest()
    assert intake.put_blob(tmp_path / "face.jpg") == digest
    (tmp_path / "copy.jpg").write_bytes(data)  # same bytes, another name, another machine
    assert other_machine.put_blob(tmp_path / "copy.jpg") == digest

    assert intake.stats.snapshot()["blobs_uploaded"] == 1
    assert intake.stats.uploads_skipped == 1 and intake.stats.bytes_up == len(data)
    assert other_machine.stats.blobs_uploaded == 0 and other_machine.stats.uploads_skipped == 1
    assert other_machine.stats.bytes_up == 0
    assert backend.read(blob_key(digest)) == data
    assert other_machine.has_blob(digest) and not other_machine.has_blob("0" * 64)

    worker = backend.open()
    worker.get_blob(digest, tmp_path / "fetched.jpg")
    assert (tmp_path / "fetched.jpg").read_bytes() == data
    assert worker.stats.bytes_down == len(data) and worker.stats.refetches == 0


def test_corrupt_blob_is_refused_and_fetched_again(backend: Backend, tmp_path: Path) -> None:
    data = _payload(tmp_path / "voice.wav", 20_000)
    digest = backend.open().put_blob(tmp_path / "voice.wav")
    backend.overwrite(blob_key(digest), b"X" + data[1:])  # same size, one byte flipped
    waits: list[float] = []

    def repair_while_waiting(seconds: float) -> None:  # the store heals between tries
        waits.append(seconds)
        backend.overwrite(blob_key(digest), data)

    worker = backend.open(RetryPolicy(attempts=3, wait_seconds=0.01, sleep=repair_while_waiting))
    (tmp_path / "out").mkdir()
    worker.get_blob(digest, tmp_path / "out" / "voice.wav")

    assert (tmp_path / "out" / "voice.wav").read_bytes() == data
    assert worker.stats.refetches == 1 and waits == [0.01]
    assert worker.stats.bytes_down == 2 * len(data)  # the corrupt copy was downloaded too
    assert os.listdir(tmp_path / "out") == ["voice.wav"]  # the bad copy left nothing behind


def test_blob_corrupt_on_every_try_gives_a_clear_error(backend: Backend, tmp_path: Path) -> None:
    data = _payload(tmp_path / "clip.mp4", 30_000)
    intake = backend.open()
    digest = intake.put_blob(tmp_path / "clip.mp4")
    backend.overwrite(blob_key(digest), data[::-1])
    worker = backend.open(RetryPolicy(attempts=3, wait_seconds=0.0, sleep=_no_sleep))
    (tmp_path / "out").mkdir()

    with pytest.raises(CorruptObjectError) as caught:
        worker.get_blob(digest, tmp_path / "out" / "clip.mp4")

    message = caught.value.user_message()
    assert "corrupt" in message and "3 time(s)" in message
    assert blob_key(digest) in message  # names the object
    assert "Fix: the corrupt copy was removed" in message
    assert isinstance(caught.value, StorageError)
    assert worker.stats.refetches == 2
    assert os.listdir(tmp_path / "out") == []  # no half or bad file looks finished
    # the corrupt copy is gone, so the next put_blob stores the file afresh
    assert not worker.has_blob(digest)
    assert intake.put_blob(tmp_path / "clip.mp4") == digest
    assert intake.stats.blobs_uploaded == 2
    worker.get_blob(digest, tmp_path / "out" / "clip.mp4")
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == data


def test_missing_blob_is_a_clear_error(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not in shared storage") as caught:
        backend.open().get_blob("ab" * 32, tmp_path / "x")
    assert "submit the job again" in caught.value.user_message()
    assert not (tmp_path / "x").exists()


# --- results ----------------------------------------------------------------------------------


def _stage(storage: Storage, job: str, attempt: int, files: dict[str, Path]) -> dict[str, str]:
    return {name: storage.put_result(job, attempt, name, src) for name, src in files.items()}


def test_results_round_trip_and_discard(backend: Backend, tmp_path: Path) -> None:
    video = _payload(tmp_path / "video.mp4", 40_000, seed=1)
    log = _payload(tmp_path / "log.txt", 300, seed=2)
    worker, intake = backend.open(), backend.open()
    manifest = _stage(worker, "job-1", 1, {"video.mp4": tmp_path / "video.mp4",
                                           "log.txt": tmp_path / "log.txt"})
    assert manifest["video.mp4"] == hashlib.sha256(video).hexdigest()
    assert intake.committed("job-1") is None  # staged is not committed

    assert worker.commit_result("job-1", 1, manifest) == 1
    assert intake.committed("job-1") == (1, manifest)
    (tmp_path / "outbox").mkdir()
    intake.get_result("job-1", 1, "video.mp4", tmp_path / "outbox" / "video.mp4")
    intake.get_result("job-1", 1, "log.txt", tmp_path / "outbox" / "log.txt")
    assert (tmp_path / "outbox" / "video.mp4").read_bytes() == video
    assert (tmp_path / "outbox" / "log.txt").read_bytes() == log
    assert intake.stats.bytes_down == len(video) + len(log)
    with pytest.raises(StorageError, match="attempt 2 of job 'job-1' is not committed"):
        intake.get_result("job-1", 2, "video.mp4", tmp_path / "x")
    with pytest.raises(StorageError, match="no result named 'other.txt'"):
        intake.get_result("job-1", 1, "other.txt", tmp_path / "x")

    intake.discard("job-1")
    assert backend.read(result_key("job-1", 1, "video.mp4")) is None
    assert backend.open().committed("job-1") == (1, manifest)  # the record stays
    with pytest.raises(ResultsDiscardedError, match="discarded") as caught:
        backend.open().get_result("job-1", 1, "video.mp4", tmp_path / "x")
    assert "Fix: the job is finished" in caught.value.user_message()
    # a late redelivery of the job still loses, and leaves nothing staged behind
    late = backend.open()
    late_manifest = _stage(late, "job-1", 2, {"video.mp4": tmp_path / "log.txt"})
    assert late.commit_result("job-1", 2, late_manifest) == 1
    assert backend.read(result_key("job-1", 2, "video.mp4")) is None
    assert not (tmp_path / "x").exists()


def test_a_losing_attempt_gets_the_winner_and_its_staging_is_removed(
    backend: Backend, tmp_path: Path
) -> None:
    _payload(tmp_path / "a.bin", 1000, seed=3)
    b = _payload(tmp_path / "b.bin", 1000, seed=4)
    first, second = backend.open(), backend.open()
    m2 = _stage(second, "job-2", 2, {"out.bin": tmp_path / "b.bin"})
    m1 = _stage(first, "job-2", 1, {"out.bin": tmp_path / "a.bin"})

    assert second.commit_result("job-2", 2, m2) == 2  # attempt order does not matter: first wins
    assert first.commit_result("job-2", 1, m1) == 2
    assert second.commit_result("job-2", 2, m2) == 2  # a repeated commit (lost reply) agrees
    assert backend.read(result_key("job-2", 1, "out.bin")) is None
    assert first.committed("job-2") == (2, m2)
    first.get_result("job-2", 2, "out.bin", tmp_path / "got.bin")
    assert (tmp_path / "got.bin").read_bytes() == b


def test_commit_of_unstaged_results_is_refused(backend: Backend, tmp_path: Path) -> None:
    _payload(tmp_path / "a.bin", 100)
    storage = backend.open()
    manifest = _stage(storage, "job-3", 1, {"out.bin": tmp_path / "a.bin"})
    with pytest.raises(StorageError, match="'video.mp4' of job 'job-3' attempt 1 was never"):
        storage.commit_result("job-3", 1, {**manifest, "video.mp4": "0" * 64})
    assert storage.committed("job-3") is None
    assert backend.read(commit_key("job-3")) is None


def test_corrupt_result_is_refused_and_fetched_again(backend: Backend, tmp_path: Path) -> None:
    data = _payload(tmp_path / "video.mp4", 5000)
    worker = backend.open()
    manifest = _stage(worker, "job-4", 1, {"video.mp4": tmp_path / "video.mp4"})
    worker.commit_result("job-4", 1, manifest)
    backend.overwrite(result_key("job-4", 1, "video.mp4"), data[:-1])  # truncated

    intake = backend.open(RetryPolicy(attempts=2, wait_seconds=0.0, sleep=_no_sleep))
    with pytest.raises(CorruptObjectError, match="corrupt") as caught:
        intake.get_result("job-4", 1, "video.mp4", tmp_path / "got.mp4")
    assert result_key("job-4", 1, "video.mp4") in caught.value.user_message()
    assert intake.stats.refetches == 1 and not (tmp_path / "got.mp4").exists()

    def heal(_: float) -> None:
        backend.overwrite(result_key("job-4", 1, "video.mp4"), data)

    healing = backend.open(RetryPolicy(attempts=2, wait_seconds=0.0, sleep=heal))
    healing.get_result("job-4", 1, "video.mp4", tmp_path / "got.mp4")
    assert (tmp_path / "got.mp4").read_bytes() == data and healing.stats.refetches == 1


@pytest.mark.parametrize(
    ("job", "name", "problem"),
    [
        ("../etc", "out.bin", "not usable as a job key"),
        ("a/b", "out.bin", "not usable as a job key"),
        ("job", ".hidden", "not usable as a result name"),
        ("job", "x" * 201, "not usable as a result name"),
        ("job", "ä" * 101, "not usable as a result name"),  # 202 bytes of UTF-8
        ("job", "c:d", "not usable as a result name"),
    ],
)
def test_unsafe_keys_are_refused(
    backend: Backend, tmp_path: Path, job: str, name: str, problem: str
) -> None:
    _payload(tmp_path / "a.bin", 10)
    with pytest.raises(StorageError, match=problem):
        backend.open().put_result(job, 1, name, tmp_path / "a.bin")
    with pytest.raises(StorageError, match="not a sha256"):
        backend.open().get_blob("../../etc/passwd", tmp_path / "x")


# --- first commit wins ------------------------------------------------------------------------


def _race_threads(backend: Backend, job: str, racers: int, tmp_path: Path) -> None:
    handles = [backend.open() for _ in range(racers)]
    payloads = {n: f"attempt {n} of {job}".encode() * 50 for n in range(1, racers + 1)}
    manifests = {}
    for n, data in payloads.items():
        (tmp_path / f"{job}-{n}.bin").write_bytes(data)
        manifests[n] = _stage(handles[n - 1], job, n, {"out.bin": tmp_path / f"{job}-{n}.bin"})
    barrier = threading.Barrier(racers)
    winners: dict[int, int] = {}

    def race(n: int) -> None:
        barrier.wait(timeout=30)
        winners[n] = handles[n - 1].commit_result(job, n, manifests[n])

    threads = [threading.Thread(target=race, args=(n,)) for n in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(winners) == racers and len(set(winners.values())) == 1, winners
    won = winners[1]
    assert backend.open().committed(job) == (won, manifests[won])
    backend.open().get_result(job, won, "out.bin", tmp_path / f"{job}.got")
    assert (tmp_path / f"{job}.got").read_bytes() == payloads[won]
    for n in payloads:  # only the winner's staged result is left
        assert backend.read(result_key(job, n, "out.bin")) == (payloads[n] if n == won else None)


def test_first_commit_wins_across_threads(backend: Backend, tmp_path: Path) -> None:
    for round_ in range(3):
        _race_threads(backend, f"race-{round_}", 6, tmp_path)


def test_first_commit_wins_across_processes(backend: Backend, tmp_path: Path) -> None:
    winners = race_in_processes(backend, "race-proc", 4, tmp_path)
    assert len(set(winners)) == 1 and winners[0] in (1, 2, 3, 4)
    record = backend.open().committed("race-proc")
    assert record is not None and record[0] == winners[0]


# --- a broken setup: clear errors -------------------------------------------------------------


def test_folder_not_mounted_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist") as caught:
        open_folder(tmp_path / "Volumes" / "studio")
    message = caught.value.user_message()
    assert "is the share mounted" in message and "Fix: mount the share" in message
    assert not (tmp_path / "Volumes").exists()  # never created: that would split the fleet


def test_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "share").write_text("not a folder")
    with pytest.raises(StorageError, match="not a folder"):
        open_folder(tmp_path / "share")


def test_unwritable_folder_is_a_clear_error() -> None:
    with tempfile.TemporaryDirectory() as top:  # under /tmp, reachable by an unprivileged user
        Path(top).chmod(0o755)
        root = Path(top) / "share"
        root.mkdir(mode=0o555)

        def try_open() -> str:
            try:
                open_folder(root)
            except StorageError as err:
                return err.user_message()
            return "opened"

        message = run_unprivileged(try_open)
        root.chmod(0o755)
        assert "cannot write to the shared storage folder" in message, message
        assert "Fix: give this user write access" in message and str(root) in message
        assert os.listdir(root) == []


def test_open_storage_needs_a_path_for_the_folder_backend(tmp_path: Path) -> None:
    unset = StorageSettings(StorageBackend.FOLDER, path=None, url="", bucket="", region="")
    with pytest.raises(StorageError, match="storage.path is not set"):
        open_storage(unset)
    storage = open_storage(
        StorageSettings(StorageBackend.FOLDER, path=tmp_path, url="", bucket="", region="")
    )
    _payload(tmp_path / "a.bin", 10)
    assert storage.has_blob(storage.put_blob(tmp_path / "a.bin"))
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "blobs"]  # the probe left nothing


@pytest.mark.usefixtures("aws_env")
def test_missing_bucket_is_a_clear_error(s3_server: S3Server) -> None:
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket' does not exist") as caught:
        open_s3("no-such-bucket", url=s3_server.url, region=REGION)
    message = caught.value.user_message()
    assert f"Fix: create it (aws s3 mb s3://no-such-bucket --endpoint-url {s3_server.url})" in (
        message
    )


def test_missing_credentials_are_a_clear_error(
    aws_env: None, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _new_bucket(s3_server)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no S3 credentials were found") as caught:
        open_s3(bucket, url=s3_server.url, region=REGION)
    message = caught.value.user_message()
    assert "AWS_ACCESS_KEY_ID" in message and "never reads credentials from its config" in message


@pytest.mark.usefixtures("aws_env")
def test_a_store_without_conditional_writes_is_refused() -> None:
    with S3Server(conditional_writes=False) as server:
        bucket = _new_bucket(server)
        with pytest.raises(StorageError, match="does not honour conditional writes") as caught:
            open_s3(bucket, url=server.url, region=REGION)
        assert "two machines could both commit the same job" in caught.value.user_message()
        with _raw_client(server) as client:  # the probe cleaned up after itself
            assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []


@pytest.mark.usefixtures("aws_env")
def test_unreachable_store_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(StorageError, match="cannot reach the S3 store at") as caught:
        open_s3("bucket", url=url, region=REGION)
    assert "Fix: check storage.url" in caught.value.user_message()


@pytest.mark.usefixtures("aws_env")
def test_open_storage_opens_the_s3_backend(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = _new_bucket(s3_server)
    settings = StorageSettings(
        StorageBackend.S3, path=None, url=s3_server.url, bucket=bucket, region=REGION
    )
    storage = open_storage(settings)
    _payload(tmp_path / "a.bin", 10)
    digest = storage.put_blob(tmp_path / "a.bin")
    assert storage.has_blob(digest)
    storage.close()
    with _raw_client(s3_server) as client:
        listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [blob_key(digest)]  # the probe is gone


# --- the overhead benchmark the fleet benchmark calls -----------------------------------------


def test_overhead_benchmark_runs_every_job_operation(backend: Backend, tmp_path: Path) -> None:
    ticks, scratch = iter(range(1000)), tmp_path / "scratch"
    scratch.mkdir()
    report = measure_overhead(
        backend.open(), scratch, rounds=3, clock=lambda: next(ticks) / 1000  # 1 ms per op
    )
    assert set(report.median_ms) == set(report.counts()) and report.rounds == 3
    assert all(ms == pytest.approx(1.0) for ms in report.median_ms.values())
    assert report.per_job_ms() == pytest.approx(sum(report.counts().values()))
    assert "per job" in report.lines()[-1]
    assert sorted(os.listdir(scratch)) == ["payload.bin", "result.txt"]  # fetched copies gone


def test_a_damaged_commit_record_is_a_clear_error(backend: Backend, tmp_path: Path) -> None:
    if isinstance(backend, FolderBackend):
        (backend.root / "commits").mkdir()
    backend.overwrite(commit_key("job-5"), b"")  # as left by a crash mid-write
    storage = backend.open(RetryPolicy(attempts=1, wait_seconds=0.0, sleep=_no_sleep))
    with pytest.raises(StorageError, match="commit record of job 'job-5' is empty or damaged") as e:
        storage.committed("job-5")
    assert "Fix: a machine probably crashed while committing" in e.value.user_message()
    assert commit_key("job-5") in e.value.user_message()


def test_a_local_copy_that_cannot_be_written_is_not_blamed_on_the_share(
    backend: Backend, tmp_path: Path
) -> None:
    _payload(tmp_path / "a.bin", 100)
    storage = backend.open()
    digest = storage.put_blob(tmp_path / "a.bin")
    with pytest.raises(StorageError, match="cannot write or read a local copy") as caught:
        storage.get_blob(digest, tmp_path / "no-such-folder" / "a.bin")
    message = caught.value.user_message()
    assert str(tmp_path / "no-such-folder") in message and "this machine's work folder" in message
    assert storage.has_blob(digest)  # the stored blob is untouched
