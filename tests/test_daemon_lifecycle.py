"""The daemon as a real process on real folders: claim once, survive kills, retry, fail cleanly.

Each test starts ``facedrop watch`` in a subprocess with the test pipeline (daemon_pipeline.py,
selected by the FACEDROP_PIPELINE test hook), drops job folders into its inbox and waits on the
outbox with deadlines; nothing sleeps longer than a settle interval.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import yaml

from tests.helpers.daemon_harness import (
    BAD_JOB_LIMITS,
    BAD_JOBS,
    DaemonProcess,
    finished,
    make_job,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)

TIMEOUT = 60.0  # generous: the CI machine is small and shared


@dataclass
class Setup:
    root: Path
    config: Path
    home: Path
    inbox: Path
    outbox: Path
    state: Path
    face: Path
    clip: Path
    runlog: Path

    def runs(self, job: str, what: str = "start") -> int:
        if not self.runlog.exists():
            return 0
        lines = self.runlog.read_text().splitlines()
        return sum(1 for line in lines if line.split("\t")[0] == job and line.endswith(what))

    def db_row(self, outbox_name: str) -> tuple[str, int]:
        with sqlite3.connect(self.state / "facedrop.db") as conn:
            return conn.execute(
                "SELECT state, attempts FROM jobs WHERE outbox = ?",
                (outbox_name,),
            ).fetchone()


@pytest.fixture
def setup(tmp_path: Path, astronaut_path: Path, speech_path: Path) -> Setup:
    root = tmp_path / "root"
    config = write_config(root, limits=BAD_JOB_LIMITS)
    (tmp_path / "home").mkdir()
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 1.0)
    return Setup(
        root,
        config,
        tmp_path / "home",
        root / "inbox",
        root / "outbox",
        root / "state",
        astronaut_path,
        clip,
        tmp_path / "runs.log",
    )


@pytest.fixture
def start(setup: Setup) -> Iterator[Callable[..., DaemonProcess]]:
    procs: list[DaemonProcess] = []

    def _start(config: Path | None = None, **env: str) -> DaemonProcess:
        proc = DaemonProcess(
            config or setup.config,
            setup.home,
            setup.root.parent / f"daemon{len(procs)}.log",
            FACEDROP_TEST_RUNLOG=str(setup.runlog),
            **env,
        )
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        proc.stop()


def drop(setup: Setup, name: str, job_yaml: str = "") -> Path:
    """Build a job outside the inbox and move it in with one rename (a careful submitter)."""
    staged = make_job(setup.root / "staging", name, setup.face, setup.clip, job_yaml)
    dest = setup.inbox / name
    setup.inbox.mkdir(parents=True, exist_ok=True)
    staged.rename(dest)
    return dest


def wait_done(setup: Setup, name: str, daemon: DaemonProcess, state: str = "done") -> dict:
    def check():
        assert daemon.alive(), daemon.output()
        return finished(setup.outbox / name)

    status = wait_for(check, TIMEOUT, f"{name} to finish")
    assert status["state"] == state, (status, daemon.output())
    return status


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_complete_outbox(folder: Path, video: str) -> None:
    names = {p.name for p in folder.iterdir()}
    assert {video, "timing.json", "timing.log", "job.yaml", "status.json", "input"} <= names
    assert not [n for n in names if ".partial" in n or n.endswith(".tmp")]
    with av.open(str(folder / video)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"


def write_slowly(path: Path, data: bytes, chunks: int, pause: float, check: Callable[[], None]):
    """Append ``data`` in ``chunks`` pieces, ``pause`` apart, checking the claim each time."""
    step = -(-len(data) // chunks)
    for i in range(0, len(data), step):
        check()
        with path.open("ab") as fh:
            fh.write(data[i : i + step])
        time.sleep(pause)


def test_slow_copy_is_claimed_once_only_when_complete(setup, start):
    # A settle window of 3 checks x 0.25 s: wide enough that a busy CI machine's scheduling
    # hiccups between two chunks do not look like a finished copy.
    config = yaml.safe_load(setup.config.read_text())
    config["daemon"]["settle_seconds"] = 0.25
    setup.config.write_text(yaml.safe_dump(config))
    daemon = start()
    face, audio = setup.face.read_bytes(), setup.clip.read_bytes()

    def not_claimed(name: str) -> Callable[[], None]:
        def check() -> None:
            assert (setup.inbox / name).is_dir(), f"{name} was claimed before it was complete"
            assert not (setup.outbox / name).exists()

        return check

    setup.inbox.mkdir(parents=True, exist_ok=True)
    # Case 1: job.yaml last; the files arrive in chunks over about two seconds.
    folder = setup.inbox / "slow-last"
    folder.mkdir()
    write_slowly(folder / "face.png", face, 10, 0.05, not_claimed("slow-last"))
    write_slowly(folder / "voice.wav", audio, 10, 0.05, not_claimed("slow-last"))
    not_claimed("slow-last")()
    (folder / "job.yaml").write_text("fps: 25\n")
    # Case 2: job.yaml first, no manifest: only the settling of sizes and mtimes protects it.
    folder = setup.inbox / "slow-first"
    folder.mkdir()
    (folder / "job.yaml").write_text("")
    check = not_claimed("slow-first")
    write_slowly(folder / "face.png", face, 10, 0.05, check)
    write_slowly(folder / "voice.wav", audio, 10, 0.05, check)
    # Case 3: job.yaml first with a manifest; the copy stalls for longer than the settle
    # window half-way through the audio, and the manifest keeps the job waiting.
    folder = setup.inbox / "stalled"
    folder.mkdir()
    (folder / "job.yaml").write_text(
        f"files:\n  - face.png\n  - {{name: voice.wav, size: {len(audio)}}}\n"
    )
    check = not_claimed("stalled")
    write_slowly(folder / "face.png", face, 4, 0.05, check)
    write_slowly(folder / "voice.wav", audio[: len(audio) // 2], 4, 0.05, check)
    time.sleep(1.5)  # a stalled copy: twice the settle window
    check()
    write_slowly(folder / "voice.wav", audio[len(audio) // 2 :], 4, 0.05, check)

    for name in ("slow-last", "slow-first", "stalled"):
        wait_done(setup, name, daemon)
        out = setup.outbox / name
        assert_complete_outbox(out, f"{name}.mp4")
        assert sha(out / "input" / "face.png") == sha(setup.face)
        assert sha(out / "input" / "voice.wav") == sha(setup.clip)
        assert setup.runs(name) == 1
        assert setup.db_row(name) == ("done", 1)
    assert sorted(p.name for p in setup.outbox.iterdir()) == ["slow-first", "slow-last", "stalled"]


def test_twenty_jobs_at_once_each_run_exactly_once(setup, start):
    staging = setup.root / "staging"
    names = [f"job{i:02d}" for i in range(20)]
    for name in names:
        make_job(staging, name, setup.face, setup.clip)
    setup.inbox.mkdir(parents=True)
    daemon = start()
    for name in names:
        (staging / name).rename(setup.inbox / name)
    for name in names:
        wait_done(setup, name, daemon)
    assert sorted(p.name for p in setup.outbox.iterdir()) == names
    for name in names:
        assert_complete_outbox(setup.outbox / name, f"{name}.mp4")
        assert (setup.runs(name, "start"), setup.runs(name, "end")) == (1, 1)
        assert setup.db_row(name) == ("done", 1)
    assert list(setup.inbox.iterdir()) == []
    assert list((setup.state / "work").iterdir()) == []


def wait_running(setup: Setup, name: str, daemon: DaemonProcess) -> None:
    def check():
        assert daemon.alive(), daemon.output()
        status = read_status(setup.outbox / name)
        return status and status["state"] == "running" and status.get("progress", 0) > 0

    wait_for(check, TIMEOUT, f"{name} to be running")


def test_kill_9_mid_job_then_restart_completes_on_attempt_2(setup, start):
    daemon = start(FACEDROP_TEST_CHUNK_SLEEP="0.5")
    drop(setup, "victim")
    wait_running(setup, "victim", daemon)
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    assert setup.db_row("victim") == ("running", 1)  # as the kill left it
    daemon = start()
    status = wait_done(setup, "victim", daemon)
    assert status["attempt"] == 2
    assert setup.db_row("victim") == ("done", 2)
    assert (setup.runs("victim", "start"), setup.runs("victim", "end")) == (2, 1)
    out = setup.outbox / "victim"
    assert_complete_outbox(out, "victim.mp4")
    assert sorted(p.name for p in (out / "input").iterdir()) == [
        "face.png",
        "job.yaml",
        "voice.wav",
    ]
    assert sha(out / "input" / "voice.wav") == sha(setup.clip)


def test_failing_job_ends_failed_after_max_attempts_and_daemon_serves_next(setup, start):
    daemon = start(FACEDROP_TEST_FAIL_JOBS="doomed")
    drop(setup, "doomed")
    drop(setup, "fine")
    status = wait_done(setup, "doomed", daemon, state="failed")
    assert status["attempt"] == 3
    assert setup.runs("doomed") == 3
    assert setup.db_row("doomed") == ("failed", 3)
    with sqlite3.connect(setup.state / "facedrop.db") as conn:
        starts = [at for (at,) in conn.execute(
            "SELECT attempts.at FROM attempts JOIN jobs ON jobs.id = job_id "
            "WHERE name = 'doomed' AND to_state = 'running' ORDER BY attempts.id")]
    # Retries back off: retry_backoff_seconds (0.05 in the test config), then twice that.
    assert starts[1] - starts[0] >= 0.05 and starts[2] - starts[1] >= 0.1, starts
    out = setup.outbox / "doomed"
    error = (out / "error.txt").read_text()
    assert "RuntimeError: test pipeline told to fail doomed" in error
    assert "facedrop.log" in error and "Traceback" not in error
    assert sorted(p.name for p in (out / "input").iterdir()) == [
        "face.png",
        "job.yaml",
        "voice.wav",
    ]
    assert not [p for p in out.iterdir() if p.suffix == ".mp4"]
    wait_done(setup, "fine", daemon)
    assert daemon.alive()


def test_bad_jobs_each_fail_with_a_specific_error_and_daemon_keeps_running(setup, start):
    staging = setup.root / "staging"
    outside = setup.root / "outside"
    outside.mkdir(parents=True)
    (outside / "abs.png").write_bytes(setup.face.read_bytes())
    for case, spoil, _ in BAD_JOBS:
        spoil(make_job(staging, case, setup.face, setup.clip), outside)
    make_job(staging, "good", setup.face, setup.clip)
    daemon = start()
    setup.inbox.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir()):
        path.rename(setup.inbox / path.name)
    for case, _, expected in BAD_JOBS:
        status = wait_done(setup, case, daemon, state="failed")
        error = (setup.outbox / case / "error.txt").read_text()
        assert expected in error, (case, error)
        assert "/work/" not in error  # files are named where the user finds them: input/
        assert expected in status["error"] or status["error"] in error
        assert (setup.outbox / case / "input" / "job.yaml").exists()
        # An input error is never retried: one attempt when the worker's parser failed it, none
        # when the folder never became ready and the Intake failed it (same parser message).
        assert setup.db_row(case) in (("failed", 1), ("failed", 0))
        assert setup.runs(case) == 0  # and never reaches the pipeline
    named = setup.outbox / "not-an-image" / "input" / "face.png"
    assert f"File: {named}" in (setup.outbox / "not-an-image" / "error.txt").read_text()
    assert named.is_file()
    wait_done(setup, "good", daemon)
    assert daemon.alive()


def test_sigterm_mid_job_exits_in_time_and_job_is_retried(setup, start):
    daemon = start(FACEDROP_TEST_CHUNK_SLEEP="0.5")
    drop(setup, "interrupted")
    wait_running(setup, "interrupted", daemon)
    t0 = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert time.monotonic() - t0 < 5.0  # daemon.shutdown_timeout in the test config
    assert read_status(setup.outbox / "interrupted")["state"] == "queued"
    assert setup.db_row("interrupted") == ("queued", 1)
    assert not [p for p in (setup.outbox / "interrupted").iterdir() if ".partial" in p.name]
    daemon = start()
    status = wait_done(setup, "interrupted", daemon)
    assert status["attempt"] == 2
    assert_complete_outbox(setup.outbox / "interrupted", "interrupted.mp4")


def test_inbox_deleted_recreated_or_renamed_while_running(setup, start):
    daemon = start()
    drop(setup, "before")
    wait_done(setup, "before", daemon)
    shutil.rmtree(setup.inbox)
    setup.inbox.mkdir(exist_ok=True)  # the user recreates it (the daemon may already have)
    drop(setup, "after-delete")
    wait_done(setup, "after-delete", daemon)
    setup.inbox.rename(setup.root / "inbox-old")
    wait_for(setup.inbox.is_dir, TIMEOUT, "the daemon to recreate the inbox")
    drop(setup, "after-rename")
    wait_done(setup, "after-rename", daemon)


def test_same_name_twice_gets_two_outbox_folders(setup, start):
    daemon = start()
    drop(setup, "twin")
    wait_done(setup, "twin", daemon)
    first = sha(setup.outbox / "twin" / "twin.mp4")
    first_status = (setup.outbox / "twin" / "status.json").read_text()
    drop(setup, "twin", "fps: 20\n")
    wait_done(setup, "twin (2)", daemon)
    assert sha(setup.outbox / "twin" / "twin.mp4") == first
    assert (setup.outbox / "twin" / "status.json").read_text() == first_status
    second = yaml.safe_load((setup.outbox / "twin (2)" / "job.yaml").read_text())
    assert second["fps"] == 20
    assert_complete_outbox(setup.outbox / "twin (2)", "twin.mp4")


def test_state_folder_is_locked_against_a_second_daemon(setup, start):
    first = start()
    wait_for(lambda: (setup.state / "daemon.lock").exists(), TIMEOUT, "the first daemon")
    second = start()
    assert second.wait(30) == 2
    assert "already" in second.output() and str(first.proc.pid) in second.output()
    assert first.alive()


def test_unexpected_error_details_go_to_the_log_not_error_txt(setup, start):
    config = yaml.safe_load(setup.config.read_text())
    config["daemon"]["max_attempts"] = 1
    setup.config.write_text(yaml.safe_dump(config))
    daemon = start(FACEDROP_TEST_FAIL_JOBS="x")
    drop(setup, "x")
    wait_done(setup, "x", daemon, state="failed")
    log = setup.root / "logs" / "facedrop.log"
    assert os.fspath(log) in (setup.outbox / "x" / "error.txt").read_text()
    text = log.read_text()
    assert "Traceback" in text and "test pipeline told to fail x" in text
