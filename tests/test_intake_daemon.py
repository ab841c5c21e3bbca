"""Classes 1 and 2 of issue 11 through a real ``facedrop watch`` process.

A copy that stalls far longer than the settle window, half-way through the recording, is not
claimed; when it completes, the job ends done with the whole audio. A ``job.yaml`` that is a FIFO
neither blocks the daemon (a later job still runs) nor keeps SIGTERM from being honoured, and
it ends failed with an ``error.txt`` that says what the file is.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from tests.helpers.daemon_harness import (
    DaemonProcess,
    finished,
    make_job,
    speech_clip,
    wait_for,
    write_config,
)

TIMEOUT = 60.0
SHUTDOWN = 5.0  # daemon.shutdown_timeout in write_config
GRACE = 8.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    write_config(tmp_path / "root", daemon={"incomplete_grace_seconds": GRACE})
    return tmp_path


@pytest.fixture
def daemon(root: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(root / "root" / "config.yaml", root / "home", root / "daemon.log")
    yield proc
    proc.stop()


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:  # free any reader still blocked on one (none should be)
        for candidate in [path, *path.parent.parent.glob(f"*/{path.name}")]:
            try:
                os.close(os.open(candidate, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audio_seconds(video: Path) -> float:
    with av.open(str(video)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


def test_a_stalled_half_written_wav_is_not_claimed_and_ends_done_whole(
    root, daemon, astronaut_path, speech_path
):
    inbox, outbox = root / "root" / "inbox", root / "root" / "outbox"
    voice = speech_clip(speech_path, root / "full.wav", 1.0)
    full = voice.read_bytes()
    folder = make_job(root / "staging", "stall", astronaut_path, voice)
    (folder / "voice.wav").write_bytes(full[: len(full) // 2])
    inbox.mkdir(parents=True, exist_ok=True)
    folder.rename(inbox / "stall")
    # Stalled for 3 s: fifteen times the 0.2 s settle window, well inside the grace period.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert (inbox / "stall" / "voice.wav").exists(), "claimed before the copy finished"
        assert not (outbox / "stall").exists()
        assert daemon.alive(), daemon.output()
        time.sleep(0.1)
    with (inbox / "stall" / "voice.wav").open("ab") as fh:
        fh.write(full[len(full) // 2 :])  # the copy resumes and ends
    status = wait_for(lambda: finished(outbox / "stall"), TIMEOUT, "the stalled job to finish")
    assert status["state"] == "done", daemon.output()
    assert sha(outbox / "stall" / "input" / "voice.wav") == sha(voice)
    assert audio_seconds(outbox / "stall" / "stall.mp4") == pytest.approx(1.0, abs=0.1)


def test_a_fifo_job_yaml_blocks_neither_the_daemon_nor_sigterm(
    root, daemon, astronaut_path, speech_path, fifos
):
    inbox, outbox = root / "root" / "inbox", root / "root" / "outbox"
    voice = speech_clip(speech_path, root / "v.wav", 0.5)
    bad = make_job(root / "staging", "fifo", astronaut_path, voice)
    (bad / "job.yaml").unlink()
    os.mkfifo(bad / "job.yaml")
    fifos.append(inbox / "fifo" / "job.yaml")
    inbox.mkdir(parents=True, exist_ok=True)
    bad.rename(inbox / "fifo")
    good = make_job(root / "staging", "after", astronaut_path, voice)
    good.rename(inbox / "after")
    status = wait_for(lambda: finished(outbox / "after"), TIMEOUT, "the job after the FIFO")
    assert status["state"] == "done", daemon.output()
    status = wait_for(lambda: finished(outbox / "fifo"), TIMEOUT, "the FIFO job to fail")
    assert status["state"] == "failed", daemon.output()
    error = next((outbox / "fifo").rglob("error.txt")).read_text()
    assert "named pipe" in error and "job.yaml" in error and "Fix:" in error
    assert daemon.alive()
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    daemon.wait(timeout=SHUTDOWN + 5)
    assert time.monotonic() - started < SHUTDOWN, "SIGTERM was not honoured in time"


def test_sigterm_is_honoured_while_a_fifo_job_yaml_waits_in_the_inbox(
    root, daemon, astronaut_path, speech_path, fifos
):
    """The FIFO arrives before its photo and audio. A job.yaml that is not a regular file can
    never become one, so the job fails at once (issue 20, 7: wrong job.yaml on first sight);
    the daemon still honours SIGTERM, and the FIFO itself is kept in the outbox."""
    inbox = root / "root" / "inbox"
    folder = inbox / "early"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "job.yaml")
    fifos.append(folder / "job.yaml")
    time.sleep(2.0)  # many rescans of a folder whose job.yaml is a FIFO
    assert daemon.alive(), daemon.output()
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    daemon.wait(timeout=SHUTDOWN + 5)
    assert time.monotonic() - started < SHUTDOWN
    outbox = root / "root" / "outbox" / "early"
    kept = outbox / "input" / "job.yaml"
    assert kept.is_fifo() or (folder / "job.yaml").is_fifo()  # nothing lost
    if kept.is_fifo():
        error = (outbox / "error.txt").read_text()
        assert "named pipe" in error and "job.yaml" in error and "Fix:" in error
