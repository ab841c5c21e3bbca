"""The daemon loop in-process (burst mode): EXDEV claims, crash recovery, the state machine,
and a pipeline that ignores cancellation."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.spec import CancelToken, JobSpec, ProgressFn, TimingRecord
from tests.helpers.daemon_harness import make_job, read_status, speech_clip, wait_for, write_config
from tests.helpers.daemon_pipeline import TestPipeline
from watcher.config import Config, load_config
from watcher.daemon import Daemon, pipeline_factory
from watcher.outbox import move
from watcher.state import JobState, StateDB, TransitionError


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    path = write_config(
        tmp_path / "root",
        daemon={"settle_seconds": 0.02, "settle_checks": 2, "shutdown_timeout": 1.5},
    )
    return load_config(path, home=tmp_path / "home")


@pytest.fixture
def clip(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "clip.wav", 0.5)


def test_claim_across_volumes_copies_fsyncs_and_renames(config, astronaut_path, clip):
    make_job(config.paths.inbox, "far", astronaut_path, clip)
    calls: list[tuple[Path, Path]] = []

    def cross_device_rename(src: Path, dest: Path) -> None:
        calls.append((Path(src), Path(dest)))
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline), rename=cross_device_rename)
    assert daemon.run(burst=True, install_signals=False) == 0
    out = config.paths.outbox / "far"
    assert read_status(out)["state"] == "done"
    assert (out / "far.mp4").is_file()
    assert sorted(p.name for p in (out / "input").iterdir()) == [
        "face.png",
        "job.yaml",
        "voice.wav",
    ]
    assert not (config.paths.inbox / "far").exists()
    assert len(calls) == 2  # the claim into work/ and the move into the outbox's input/
    assert not [p for p in out.rglob("*") if ".copying" in p.name]


def test_move_reraises_other_errors(tmp_path):
    def denied(src: Path, dest: Path) -> None:
        raise PermissionError(errno.EACCES, "denied")

    (tmp_path / "a").mkdir()
    with pytest.raises(PermissionError):
        move(tmp_path / "a", tmp_path / "b", denied)
    assert (tmp_path / "a").is_dir()


def test_transition_table_rejects_illegal_moves(tmp_path):
    db = StateDB(tmp_path)
    row = db.add_job("j", tmp_path / "w", tmp_path / "o")
    with pytest.raises(TransitionError):
        db.transition(row.id, JobState.DONE)  # queued -> done skips running
    row = db.transition(row.id, JobState.RUNNING)
    assert row.attempts == 1
    row = db.transition(row.id, JobState.QUEUED, "cancelled")
    row = db.transition(row.id, JobState.RUNNING)
    assert row.attempts == 2 and db.counted_attempts(row.id) == 1  # the cancel does not count
    db.transition(row.id, JobState.DONE)
    with pytest.raises(TransitionError):
        db.transition(row.id, JobState.RUNNING)  # done is final
    assert [h[2] for h in db.history(row.id)] == ["queued", "running", "queued", "running", "done"]
    db.close()


def test_job_that_kept_crashing_the_daemon_is_failed_on_restart(config, astronaut_path, clip):
    """Three recorded starts with no end (kill -9 each time): the next start gives up."""
    make_job(config.paths.inbox, "crasher", astronaut_path, clip)
    # Claim it the way the daemon does, then fake three crashed attempts in the state.
    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline))
    config.paths.outbox.mkdir(parents=True)
    daemon.work_dir.mkdir(parents=True)
    daemon.db = StateDB(config.paths.state)
    daemon._claim(config.paths.inbox / "crasher")
    (row,) = daemon.db.jobs()
    for _ in range(config.daemon.max_attempts):
        daemon.db.transition(row.id, JobState.RUNNING)
        daemon.db.transition(row.id, JobState.QUEUED, "crashed")
    daemon.db.close()
    Daemon(config, _never_called).run(burst=True, install_signals=False)
    out = config.paths.outbox / "crasher"
    assert read_status(out)["state"] == "failed"
    assert "given up after 3 attempts" in (out / "error.txt").read_text()
    assert (out / "input" / "voice.wav").is_file()


def _never_called(config: Config) -> TestPipeline:
    raise AssertionError("the pipeline must not run")


def test_claimed_but_unrecorded_folder_is_adopted_on_start(config, astronaut_path, clip):
    """A kill between the claim rename and the database insert must not lose the job."""
    slot = config.paths.state / "work" / "abc-1"
    make_job(slot, "orphan", astronaut_path, clip)
    Daemon(config, lambda c: TestPipeline(c.pipeline)).run(burst=True, install_signals=False)
    assert read_status(config.paths.outbox / "orphan")["state"] == "done"
    assert not slot.exists()


class StubbornPipeline:
    """Ignores the cancel token, as a stuck model call would."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def run(
        self, job: JobSpec, output: Path, progress: ProgressFn, cancel: CancelToken
    ) -> TimingRecord:
        self.started.set()
        self.release.wait(30)
        raise RuntimeError("released")


def test_shutdown_returns_within_timeout_even_if_the_pipeline_ignores_cancel(
    config, astronaut_path, clip
):
    make_job(config.paths.inbox, "stuck", astronaut_path, clip)
    stubborn = StubbornPipeline()
    daemon = Daemon(config, lambda c: stubborn)
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    thread.start()
    try:
        wait_for(stubborn.started.is_set, 30, "the pipeline to start")
        t0 = time.monotonic()
        daemon.request_stop()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - t0 < config.daemon.shutdown_timeout + 0.5
    finally:
        stubborn.release.set()
        if daemon._worker is not None:
            daemon._worker.join(10)
    db = StateDB(config.paths.state, readonly=True)
    (row,) = db.jobs()
    assert row.state is JobState.QUEUED  # retryable
    assert db.history(row.id)[-1][3] == "cancelled"
    db.close()
    assert (row.work_dir / "voice.wav").is_file()
    assert os.listdir(config.paths.inbox) == []


def test_notifier_hears_done_and_failed(tmp_path, monkeypatch, astronaut_path, clip):
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    path = write_config(
        tmp_path / "n", daemon={"settle_seconds": 0.02, "settle_checks": 2, "notify": True}
    )
    config = load_config(path, home=tmp_path / "home")
    make_job(config.paths.inbox, "ok", astronaut_path, clip)
    make_job(config.paths.inbox, "bad", astronaut_path, clip, "colour: red\n")
    heard: list[tuple[str, str]] = []
    daemon = Daemon(
        config,
        lambda c: TestPipeline(c.pipeline),
        notifier=lambda title, body: heard.append((title, body)),
    )
    daemon.run(burst=True, install_signals=False)
    assert sorted(heard) == [
        ("bad", "Failed: Problem with the job: unknown key 'colour' in job.yaml"),
        ("ok", f"Done: {config.paths.outbox / 'ok' / 'ok.mp4'}"),
    ]


def test_unloadable_pipeline_is_a_config_error_that_fails_the_job_cleanly(
    config, astronaut_path, clip
):
    make_job(config.paths.inbox, "j", astronaut_path, clip)
    factory = pipeline_factory("tests.no_such_module:Nothing")
    with pytest.raises(ConfigError, match="no_such_module"):
        factory(config)
    Daemon(config, factory).run(burst=True, install_signals=False)
    error = (config.paths.outbox / "j" / "error.txt").read_text()
    assert error.startswith("Configuration error: the pipeline 'tests.no_such_module:Nothing'")
    assert read_status(config.paths.outbox / "j")["attempt"] == config.daemon.max_attempts
