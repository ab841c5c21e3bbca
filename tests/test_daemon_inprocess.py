"""The daemon loop in-process (burst mode): EXDEV claims, crash recovery, the state machine,
and a pipeline that ignores cancellation."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.spec import CancelToken, JobQuality, JobSpec, ProgressFn, TimingRecord
from tests.helpers.daemon_harness import make_job, read_status, speech_clip, wait_for, write_config
from tests.helpers.daemon_pipeline import TestPipeline
from watcher.config import Config, load_config
from watcher.daemon import Daemon, pipeline_factory
from watcher.inbox_scan import InboxEntry, Kind, Verdict
from watcher.jobqueue import JobState, TransitionError
from watcher.outbox import move
from watcher.rates import RateStore
from watcher.sqlite_queue import SqliteQueue


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


def test_transition_table_rejects_illegal_moves_and_changes_are_idempotent(tmp_path):
    db = SqliteQueue(tmp_path)
    job = db.enqueue("j", "slot/j", "j")
    assert db.enqueue("j", "slot/j", "j") == job  # the same payload is one job
    with pytest.raises(TransitionError):
        db.done(job.id, video="j.mp4", realtime_factor=1.0)  # queued -> done skips running
    job = db.take(now=0.0)
    assert job is not None and job.attempts == 1 and job.counted == 1
    job = db.retry(job.id, "cancelled", counted=False)
    assert db.retry(job.id, "cancelled", counted=False) == job  # repeated: no change
    job = db.take(now=0.0)
    assert job is not None and job.attempts == 2 and job.counted == 1  # the cancel is given back
    job = db.retry(job.id, "failed", not_before=100.0)
    assert db.take(now=99.0) is None  # backing off
    job = db.take(now=100.0)
    assert job is not None and job.counted == 2
    db.done(job.id, video="j.mp4", realtime_factor=2.0)
    assert db.done(job.id, video="j.mp4", realtime_factor=2.0).state is JobState.DONE
    with pytest.raises(TransitionError):
        db.fail(job.id, "late")  # done is final
    assert [h[2] for h in db.history(job.id)] == [
        "queued", "running", "queued", "running", "queued", "running", "done"
    ]
    db.close()


def test_job_that_kept_crashing_the_daemon_is_failed_on_restart(config, astronaut_path, clip):
    """Three recorded starts with no end (kill -9 each time): the next start gives up."""
    make_job(config.paths.inbox, "crasher", astronaut_path, clip)
    # Claim it the way the daemon does, then record three crashed attempts in the state.
    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline))
    daemon._wire()
    assert daemon.intake is not None and daemon.queue is not None
    crasher = config.paths.inbox / "crasher"
    daemon.intake.claim(InboxEntry("crasher", crasher, Kind.FOLDER, Verdict.READY))
    for _ in range(config.daemon.max_attempts):
        job = daemon.queue.take(now=time.time())
        assert job is not None
        daemon.queue.retry(job.id, "crashed")
    daemon.queue.close()
    Daemon(config, _never_called).run(burst=True, install_signals=False)
    out = config.paths.outbox / "crasher"
    assert read_status(out)["state"] == "failed"
    assert "given up after 3 attempts" in (out / "error.txt").read_text()
    assert (out / "input" / "voice.wav").is_file()


def test_a_rates_temp_left_by_a_kill_is_removed_at_start_and_the_rates_kept(config):
    """kill -9 between rates.json's temp file and its rename leaves ``.rates.json.*.tmp``: the
    next start removes it (the crash tests found one), and the rates themselves stay."""
    state = config.paths.state
    state.mkdir(parents=True, exist_ok=True)
    (state / "rates.json").write_text('{"devices": {"cpu": [[2.0, 30.0]]}, "last_device": "cpu"}')
    left = state / ".rates.json.1a2b3c4d.tmp"
    left.write_text('{"devices": {"cpu": [[2.0, 3')  # cut off mid-write
    other = state / ".facedrop.db.1a2b3c4d.tmp"  # not the rates' temp: not theirs to remove
    other.write_text("x")
    Daemon(config, _never_called).run(burst=True, install_signals=False)
    assert not left.exists() and other.exists()
    assert RateStore(state).samples("cpu") == [(2.0, 30.0)]


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
        if daemon.worker is not None and daemon.worker._thread is not None:
            daemon.worker._thread.join(10)
    db = SqliteQueue(config.paths.state, readonly=True)
    (row,) = db.list()
    assert row.state is JobState.QUEUED and row.counted == 0  # retryable, the attempt given back
    assert db.history(row.id)[-1][3] == "cancelled"
    db.close()
    assert (config.paths.state / "work" / row.payload / "voice.wav").is_file()
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


def test_list_limit_none_is_every_job_and_a_number_caps_it(tmp_path):
    """Reconciliation and crash recovery read every job: ``limit=None``, not a huge number."""
    queue = SqliteQueue(tmp_path)
    for name in ("a", "b", "c"):
        queue.enqueue(name, f"slot/{name}", name)
    assert [j.name for j in queue.list(limit=None)] == ["a", "b", "c"]
    assert [j.name for j in queue.list(limit=2)] == ["a", "b"]
    assert [j.name for j in queue.list(JobState.QUEUED, limit=None, newest_first=True)] == [
        "c", "b", "a"
    ]
    queue.close()


def test_a_version_1_database_is_migrated_to_relative_locations(tmp_path):
    """Old databases kept absolute machine-local paths; they become relative names."""
    with sqlite3.connect(tmp_path / "facedrop.db") as conn:
        conn.executescript(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
            "work_dir TEXT NOT NULL UNIQUE, outbox_dir TEXT NOT NULL, state TEXT NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT '', "
            "progress REAL NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', "
            "claimed_at REAL NOT NULL, started_at REAL, finished_at REAL);"
            "CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER, "
            "attempt INTEGER, from_state TEXT, to_state TEXT, at REAL, detail TEXT);"
            "INSERT INTO jobs (name, work_dir, outbox_dir, state, attempts, claimed_at) VALUES "
            "('old', '/Users/ann/state/work/abc-1/old', '/Users/ann/outbox/old (2)', 'queued', "
            "1, 5.0);"
        )
    queue = SqliteQueue(tmp_path)
    (job,) = queue.list()
    assert (job.name, job.payload, job.outbox, job.state, job.attempts, job.counted) == (
        "old", "abc-1/old", "old (2)", JobState.QUEUED, 1, 1
    )
    queue.close()


def test_zip_and_long_name_claims_across_volumes(config, astronaut_path, clip):
    """EXDEV on every rename: a zipped job and a 250-byte job name (its claim marker fitted)."""
    import zipfile

    staged = make_job(config.paths.state.parent / "staging", "zipped", astronaut_path, clip)
    config.paths.inbox.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(config.paths.inbox / "zipped.zip", "w") as zf:
        for path in sorted(staged.iterdir()):
            zf.write(path, f"zipped/{path.name}")
    long_name = "é" * 125  # 250 bytes
    make_job(config.paths.inbox, long_name, astronaut_path, clip)

    def cross_device_rename(src: Path, dest: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline), rename=cross_device_rename)
    assert daemon.run(burst=True, install_signals=False) == 0
    outs = sorted(config.paths.outbox.iterdir())
    assert len(outs) == 2
    for out in outs:
        assert read_status(out)["state"] == "done", out.name
        assert sorted(p.name for p in (out / "input").iterdir()) == [
            "face.png", "job.yaml", "voice.wav"]
        assert len(list(out.glob("*.mp4"))) == 1
    assert "zipped" in [p.name for p in outs]
    assert [p.name for p in outs if p.name != "zipped"][0].startswith("é" * 100)
    assert list(config.paths.inbox.iterdir()) == []
    assert list((config.paths.state / "work").iterdir()) == []


class _CheckedPipeline(TestPipeline):
    """The test pipeline whose videos come back with a "check lip sync" quality verdict."""

    __test__ = False

    def run(self, job: JobSpec, output: Path, progress: ProgressFn,
            cancel: CancelToken) -> TimingRecord:
        record = super().run(job, output, progress, cancel)
        record.quality = JobQuality(
            "check", reasons=("lip sync is weak: 1.2 (at least 3)",), headline="check lip sync",
            files={"quality.json": b'{"verdict": "check"}\n', "preview.jpg": b"\xff\xd8 sheet",
                   "poster.jpg": b"\xff\xd8 poster"})
        return record


def test_the_quality_verdict_reaches_status_notification_and_outbox(
        tmp_path, monkeypatch, astronaut_path, clip):
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    path = write_config(
        tmp_path / "q", daemon={"settle_seconds": 0.02, "settle_checks": 2, "notify": True}
    )
    config = load_config(path, home=tmp_path / "home")
    make_job(config.paths.inbox, "talk", astronaut_path, clip)
    heard: list[tuple[str, str]] = []
    daemon = Daemon(config, lambda c: _CheckedPipeline(c.pipeline),
                    notifier=lambda title, body: heard.append((title, body)))
    daemon.run(burst=True, install_signals=False)
    folder = config.paths.outbox / "talk"
    assert heard == [("talk", f"Done — check lip sync: {folder / 'talk.mp4'}")]
    status = read_status(folder)
    assert status is not None and status["state"] == "done"
    assert status["quality"]["verdict"] == "check"
    assert status["quality"]["summary"] == "check: lip sync is weak: 1.2 (at least 3)"
    assert (folder / "quality.json").read_bytes() == b'{"verdict": "check"}\n'
    assert (folder / "poster.jpg").read_bytes() == b"\xff\xd8 poster"
    assert "quality: check: lip sync is weak" in (folder / "timing.log").read_text()
    # facedrop status shows it (the same reader as status.json)
    from watcher.status import status_report

    report = status_report(config.paths.state, config.paths.inbox, 5, outbox=config.paths.outbox)
    (job,) = report["jobs"]["finished"]
    assert job["quality"]["headline"] == "check lip sync"
