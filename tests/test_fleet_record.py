"""The intake's record of fleet jobs, in process (no Redis): a worker's start reaches the queue
only through ``Lifecycle.started``, numbered as the worker numbers it, idempotent, with history
rows; ``Dispatcher.adopt`` requeues through the transition function, so the outbox says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.daemon_harness import write_config
from watcher.config import Config, QueueBackend, load_config
from watcher.faults import FaultBoard, Places
from watcher.jobqueue import JobState
from watcher.lifecycle import Lifecycle
from watcher.outbox import Outbox
from watcher.sqlite_queue import SqliteQueue


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    path = write_config(tmp_path / "root", queue={"backend": "redis"})
    return load_config(path, home=tmp_path / "home")


@pytest.fixture
def lifecycle(config: Config) -> Lifecycle:
    queue = SqliteQueue(config.paths.state, clock=lambda: 100.0)
    outbox = Outbox(config.paths.outbox)
    work = config.paths.state / "work"
    (work / "a1b2").mkdir(parents=True)
    return Lifecycle(queue, outbox, work)


def test_a_workers_start_follows_its_attempt_number_and_repeats_harmlessly(
        lifecycle: Lifecycle) -> None:
    job = lifecycle.enqueue("hello", "a1b2/hello", "hello")
    started = lifecycle.started(job.id, 1, "attempt 1 on w1")
    assert (started.state, started.attempts, started.counted) == (JobState.RUNNING, 1, 1)
    assert lifecycle.started(job.id, 1, "attempt 1 on w1") == started  # a repeat changes nothing
    moved = lifecycle.started(job.id, 2, "attempt 2 on w2")  # redelivered to another machine
    assert (moved.state, moved.attempts, moved.counted) == (JobState.RUNNING, 2, 1)
    assert lifecycle.queue.history(job.id) == [
        (0, "", "queued", "claimed"),
        (1, "queued", "running", "attempt 1 on w1"),
        (2, "running", "running", "attempt 2 on w2"),
    ]
    done = lifecycle.transition(job.id, JobState.DONE)
    assert lifecycle.started(job.id, 3, "late progress") == done  # a finished job stays so


def test_adopt_requeues_a_fleet_job_uncounted_and_publishes_it(
        config: Config, lifecycle: Lifecycle) -> None:
    from watcher.fleet.dispatcher import Dispatcher

    assert config.queue.backend is QueueBackend.REDIS
    job = lifecycle.enqueue("hello", "a1b2/hello", "hello")
    lifecycle.started(job.id, 1, "attempt 1 on w1")
    places = Places(config.paths.inbox, config.paths.outbox, config.paths.state,
                    config.paths.weights)
    Dispatcher(lifecycle, config, FaultBoard({}), places).adopt()
    again = lifecycle.queue.get(job.id)
    assert (again.state, again.attempts, again.counted) == (JobState.QUEUED, 1, 0)
    status = json.loads((config.paths.outbox / "hello" / "status.json").read_text())
    assert status["state"] == "queued"
