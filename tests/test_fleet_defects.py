"""Issue 20, fleet defects 12-17, each reproduced against a real redis-server.

12. a killed worker's scratch folder (``fleet-work/<key>.<attempt>/``) is never removed;
13. ``progress:<key>`` (and ``job:<key>``) left in Redis for ever by a worker that resumes after
    its job was finished elsewhere;
14. "given up after 4 attempts" with ``max_attempts: 3`` after a kill during the give-up commit;
15. a Redis outage fills a worker's log with CRITICAL lines;
16. during an outage ``status`` takes 8-14 s and shows ``paused: []``;
17. during an outage the intake keeps claiming inbox jobs (now: they are held in the inbox).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon_harness import (
    DaemonProcess,
    facedrop,
    finished,
    make_job,
    speech_clip,
    wait_for,
)
from tests.helpers.daemon_pipeline import TestPipeline
from tests.helpers.fleet_harness import WorkerProcess, fleet_config
from tests.helpers.redis_server import NO_REDIS, RedisServer, redis_server_binary
from watcher.commands.fleet import worker_cards
from watcher.config import Config, load_config
from watcher.fleet.broker import redis_client
from watcher.fleet.ledger import Ledger
from watcher.fleet.messages import JobMessage, read_manifest
from watcher.fleet.runner import FleetWorker
from watcher.fleet.scratch import Scratch
from watcher.storage import open_storage

NS = "facedrop"
OWNED = {"names", "sent", "cancel", "workers"}  # collections the intake/workers empty


@pytest.fixture
def redis_server(tmp_path: Path):
    binary = redis_server_binary()
    if binary is None:
        print(f"SKIPPED: {NO_REDIS}")
        pytest.skip(NO_REDIS)
    server = RedisServer(tmp_path / "redis", binary)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)  # a test may leave it frozen
    server.stop()


@pytest.fixture
def clip(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "clip.wav", 0.5)


def config_for(root: Path, server: RedisServer, **queue: Any) -> tuple[Path, Config]:
    path = fleet_config(root, server.url, root / "shared", queue=queue)
    return path, load_config(path, home=root)


def orphans(client: Any) -> list[str]:
    """facedrop keys that would stay for ever: no expiry, and not a collection with an owner."""
    found = []
    for raw in client.scan_iter(f"{NS}:*"):
        key = raw.decode()
        if client.pttl(key) == -1 and key.split(":", 1)[1] not in OWNED:
            found.append(key)
    return sorted(found)


# ---- 13: every key has an expiry or an owner ------------------------------------------------


def test_13_a_worker_resuming_after_its_job_was_retired_leaves_no_key_for_ever(redis_server):
    ledger = Ledger(redis_server.client(), NS)
    ledger.register("k1", "job", "job")
    assert ledger.claim("k1", "w-stopped") == ""
    ledger.begin("k1")
    ledger.report_progress("k1", 1, "render", 0.2, "w-stopped")
    ledger.retire("k1")  # another worker finished it meanwhile; the intake retired it
    # The stopped worker resumes: it reports progress, then gives the job back (shutdown).
    ledger.report_progress("k1", 1, "render", 0.6, "w-stopped")
    ledger.give_back("k1", "w-stopped")
    ledger.report_progress("k1", 1, "render", 0.7, "w-stopped")
    ledger.renew_progress("gone", 30.0)  # renewing never creates a key
    assert orphans(redis_server.client()) == []
    assert 0 < redis_server.client().pttl(f"{NS}:progress:k1") <= 60_000


# ---- 14: the give-up count comes from the ledger, once --------------------------------------


class CommitKilledOnce:
    """The real storage, except that the first commit dies (a kill during the commit)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.failed = False

    def commit_result(self, *args: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise KeyboardInterrupt("killed during the commit")
        return self._real.commit_result(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_14_a_kill_during_the_give_up_commit_does_not_inflate_the_count(tmp_path, redis_server):
    _, config = config_for(tmp_path / "root", redis_server)
    ledger = Ledger(redis_client(config.queue), NS)
    storage = CommitKilledOnce(open_storage(config))
    worker = FleetWorker(config, lambda c: TestPipeline(c.pipeline), ledger, storage,
                         ident="w1")
    redis_server.client().hset(f"{NS}:job:k1", mapping={"attempt": 3, "counted": 3})
    payload = JobMessage("k1", "job", {}).to_json()
    with pytest.raises(KeyboardInterrupt):
        worker.handle(payload)  # the give-up, killed while committing
    worker.handle(payload)  # redelivered: gives up again, and commits
    attempt, _ = storage.committed("k1")
    manifest = read_manifest(storage, "k1", attempt, tmp_path / "scratch")
    assert "given up after 3 attempts" in manifest.error, manifest.error
    assert ledger.counted("k1") == 3
    storage.close()


def test_15_a_frozen_redis_timeout_in_dramatiqs_consumer_is_one_line_not_a_traceback(caplog):
    """A freeze surfaces as a redis TimeoutError that Dramatiq logs as an "unexpected error"
    with its traceback, once a second: the filter turns each into the outage's one line."""
    import logging
    import sys

    import redis

    from watcher.fleet.outage import BrokerNoise, Outage

    outage = Outage("127.0.0.1:6379")
    noise = BrokerNoise(outage)
    try:
        raise redis.TimeoutError("Timeout reading from socket")
    except redis.TimeoutError:
        exc = sys.exc_info()
    records = [logging.LogRecord("dramatiq.worker.ConsumerThread(facedrop)", logging.CRITICAL,
                                 __file__, 1, "Consumer encountered an unexpected error.", (),
                                 exc) for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="facedrop"):
        kept = [r for r in records if noise.filter(r)]
        outage.up()
    assert kept == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "cannot be reached" in lines[0] and "is back" in lines[1]
    other = logging.LogRecord("dramatiq.worker", logging.CRITICAL, __file__, 1,
                              "Consumer encountered an unexpected error.", (),
                              (ValueError, ValueError("a bug"), None))
    assert noise.filter(other)  # a real bug still shows


# ---- 16: status answers at once ----------------------------------------------------------


def test_16_status_answers_within_a_second_while_redis_is_frozen(tmp_path, redis_server):
    path, config = config_for(tmp_path / "root", redis_server)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # frozen: connects, never answers
    try:
        start = time.monotonic()
        cards = worker_cards(config)
        took = time.monotonic() - start
        assert took < 1.0, took
        assert cards is not None and cards["reachable"] is False, cards
        start = time.monotonic()
        done = facedrop(path, tmp_path / "root", "status", "--json")
        print(f"status --json with Redis frozen: {time.monotonic() - start:.2f} s "
              f"(process start included)")
        report = json.loads(done.stdout)
        assert [p["kind"] for p in report["paused"]] == ["fleet"], report["paused"]
        assert "stay in the inbox" in report["paused"][0]["reason"]
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


# ---- processes: 12, 15, 17 -------------------------------------------------------------------


class Procs:
    def __init__(self) -> None:
        self.all: list[DaemonProcess | WorkerProcess] = []

    def add(self, proc: Any) -> Any:
        self.all.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.all:
            proc.stop()


@pytest.fixture
def procs():
    made = Procs()
    yield made
    made.close()


def submit(root: Path, name: str, face: Path, audio: Path) -> None:
    folder = make_job(root / "staging", name, face, audio)
    folder.rename(root / "inbox" / name)


def test_12_a_killed_workers_scratch_is_removed_by_the_next_worker(
    tmp_path, redis_server, procs, astronaut_path, clip
):
    root = tmp_path / "root"
    path, config = config_for(root, redis_server, heartbeat_timeout_seconds=1.5)
    (root / "inbox").mkdir(parents=True)
    procs.add(DaemonProcess(path, root, root / "intake.log"))
    killed = procs.add(WorkerProcess(path, root, root / "w1.log",
                                     FACEDROP_CRASH_AT="fleet.fetched"))
    submit(root, "scratchy", astronaut_path, clip)
    killed.proc.wait(60)
    scratch = config.paths.cache / "fleet-work"
    left = [p for p in scratch.rglob("*") if p.is_dir() and "." in p.name]
    assert left, "the kill left no scratch folder to clean"
    second = procs.add(WorkerProcess(path, root, root / "w2.log"))
    wait_for(lambda: finished(root / "outbox" / "scratchy"), 60, "the job to finish")
    assert [p for p in left if p.exists()] == [], second.output()
    second.stop()
    assert list(scratch.iterdir()) == [], list(scratch.rglob("*"))


def test_15_a_redis_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    tmp_path, redis_server, procs
):
    root = tmp_path / "root"
    path, _ = config_for(root, redis_server)
    worker = procs.add(WorkerProcess(path, root, root / "w.log"))
    wait_for(lambda: "taking jobs" in worker.output(), 60, "the worker to take jobs")
    redis_server.stop()
    time.sleep(4.0)  # several consumer restarts and heartbeats meet the outage
    redis_server.start()
    client = redis_server.client()
    wait_for(lambda: client.keys(f"{NS}:worker:*"), 30, "the worker's card to be back")
    time.sleep(0.5)  # the line after the card
    worker.stop()
    text = worker.output()
    assert "CRITICAL" not in text and "Traceback" not in text, text
    assert text.count("cannot be reached") == 1, text
    assert text.count("is back after") == 1, text


def test_17_while_redis_is_down_new_jobs_stay_in_the_inbox(
    tmp_path, redis_server, procs, astronaut_path, clip
):
    root = tmp_path / "root"
    path, _ = config_for(root, redis_server)
    (root / "inbox").mkdir(parents=True)
    intake = procs.add(DaemonProcess(path, root, root / "intake.log"))
    wait_for(lambda: "watching" in intake.output(), 60, "the intake to start")
    redis_server.stop()
    wait_for(lambda: "paused" in intake.output(), 30, "the intake to pause")
    submit(root, "held", astronaut_path, clip)
    time.sleep(3.0)  # several backoff rounds of the fault
    assert (root / "inbox" / "held").is_dir(), intake.output()
    status = json.loads(facedrop(path, root, "status", "--json").stdout)
    entry = [e for e in status["inbox"] if e["name"] == "held"]
    assert entry and "held in the inbox" in entry[0]["reason"], status
    redis_server.start()
    wait_for(lambda: not (root / "inbox" / "held").exists(), 30,
             "the job to be claimed once Redis is back")


# ---- hostile cases around the fleet ----------------------------------------------------------


def test_two_workers_sharing_a_cache_never_sweep_each_others_scratch(tmp_path):
    root = tmp_path / "fleet-work"
    a, b = Scratch(root, "host-1-a"), Scratch(root, "host/2:b")  # odd ids are made safe
    a.open()
    (a.attempt("k1", 1) / "in").mkdir(parents=True)
    b.open()  # a is alive: its attempt stays
    assert a.attempt("k1", 1).is_dir()
    (b.attempt("k2", 1)).mkdir()
    os.close(a._fd)  # a is killed: its lock goes, its folder stays
    a._fd = None
    (root / "k9.3").mkdir()  # the layout before per-worker folders
    c = Scratch(root, "host-1-c")
    c.open()
    assert not a.own.exists() and not (root / "k9.3").exists()
    assert b.attempt("k2", 1).is_dir()
    b.close()
    c.close()
    assert list(root.iterdir()) == []


def test_a_cache_that_is_a_file_does_not_crash_the_worker_at_start(tmp_path):
    (tmp_path / "fleet-work").write_text("not a folder")
    scratch = Scratch(tmp_path / "fleet-work", "w")
    scratch.open()  # logs, does not raise
    scratch.close()


def test_status_with_redis_on_an_address_that_never_answers_is_quick(tmp_path):
    path = fleet_config(tmp_path / "root", "redis://10.255.255.1:6379/0", tmp_path / "shared")
    config = load_config(path, home=tmp_path)
    start = time.monotonic()
    cards = worker_cards(config)
    assert time.monotonic() - start < 1.0
    assert cards is not None and cards["reachable"] is False
