"""A native crash in the worker child ends one attempt, never the daemon.

A real ``facedrop watch`` with the stand-in pipeline: one job segfaults (a NULL read through
ctypes, after saying it decodes the audio file), one calls ``os.abort()``, and one is running
when the test kills its worker child with SIGKILL, each on every attempt. Each ends failed with
an ``error.txt`` that says what crashed (and, for the decoder, names the file); the daemon keeps
its pid; the next job, an 8-channel recording, ends done with its audio downmixed to mono.
Killing the daemon with SIGKILL mid-job leaves no worker child behind, and SIGTERM stops a
child stuck in a call that ignores cancellation within ``shutdown_timeout``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import wave
from pathlib import Path

import av
import numpy as np

from tests.helpers.daemon_harness import (
    DaemonProcess,
    finished,
    make_job,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)

TIMEOUT = 120.0


def _runs(runlog: Path, job: str) -> list[int]:
    """Pids of the processes that started ``job``, in order."""
    if not runlog.exists():
        return []
    lines = [line.split("\t") for line in runlog.read_text().splitlines()]
    return [int(pid) for name, pid, _at, what in lines if name == job and what == "start"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def eight_channels(dest: Path, seconds: float = 0.4, rate: int = 48000) -> Path:
    """An 8-channel 16-bit WAV: a tone in channel 0, silence in the others."""
    t = np.arange(int(rate * seconds)) / rate
    data = np.zeros((t.size, 8))
    data[:, 0] = 0.5 * np.sin(2 * np.pi * 440 * t)
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(8)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((data * 32767).astype("<i2").tobytes())
    return dest


def _submit(root: Path, name: str, face: Path, audio: Path) -> None:
    staged = make_job(root / "staging", name, face, audio)
    staged.rename(root / "inbox" / name)


def test_crashing_child_fails_the_job_and_the_daemon_lives(tmp_path, astronaut_path,
                                                            speech_path):
    root = tmp_path / "root"
    config = write_config(root, daemon={"max_attempts": 2})
    (root / "inbox").mkdir(parents=True)
    home = tmp_path / "home"
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.4)
    runlog = tmp_path / "runs.log"
    outbox = root / "outbox"
    daemon = DaemonProcess(
        config, home, tmp_path / "daemon.log", FACEDROP_TEST_RUNLOG=str(runlog),
        FACEDROP_TEST_SEGFAULT_JOBS="segv", FACEDROP_TEST_ABORT_JOBS="abort",
        FACEDROP_TEST_SLOW_JOBS="killed", FACEDROP_TEST_CHUNK_SLEEP="1.0",
    )
    pid = daemon.proc.pid
    try:
        for name in ("segv", "abort", "killed"):
            _submit(root, name, astronaut_path, clip)
        killed: list[int] = []
        while len(killed) < 2:  # every attempt of "killed": SIGKILL its child mid-job
            assert daemon.alive(), daemon.output()
            fresh = wait_for(lambda: [p for p in _runs(runlog, "killed") if p not in killed],
                             TIMEOUT, "the job 'killed' to start")
            os.kill(fresh[0], signal.SIGKILL)
            killed.append(fresh[0])
        for name in ("segv", "abort", "killed"):
            wait_for(lambda n=name: finished(outbox / n), TIMEOUT, f"{name} to end")
        _submit(root, "eight", astronaut_path, eight_channels(tmp_path / "eight.wav"))
        wait_for(lambda: finished(outbox / "eight"), TIMEOUT, "the 8-channel job to end")
        assert daemon.alive() and daemon.proc.pid == pid, daemon.output()
        children = {p for n in ("segv", "abort", "killed", "eight") for p in _runs(runlog, n)}
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.output()

    segv = (outbox / "segv" / "error.txt").read_text()
    assert "segmentation fault" in segv and "while decoding the audio file" in segv, segv
    assert f"File: {outbox / 'segv' / 'input' / 'voice.wav'}" in segv, segv
    abort = (outbox / "abort" / "error.txt").read_text()
    assert "aborted (SIGABRT)" in abort and "while rendering the video" in abort, abort
    gone = (outbox / "killed" / "error.txt").read_text()
    assert "was killed (SIGKILL" in gone and "out of memory" in gone, gone
    for name in ("segv", "abort", "killed"):
        status = read_status(outbox / name)
        assert status is not None and (status["state"], status["attempt"]) == ("failed", 2)
        runs = _runs(runlog, name)
        assert len(runs) == 2 and runs[0] != runs[1], (name, runs)  # a fresh child each time
        assert (outbox / name / "input" / "voice.wav").is_file()
        assert not list((outbox / name).glob("*.mp4"))

    status = read_status(outbox / "eight")
    assert status is not None and status["state"] == "done", status
    with av.open(str(outbox / "eight" / "eight.mp4")) as video:
        audio = video.streams.audio[0]
        assert audio.codec_context.channels == 1  # downmixed, not dropped
        assert abs(float(audio.duration * audio.time_base) - 0.4) < 0.06
    assert not [p for p in children if _alive(p)]  # no child outlives the daemon


def test_kill_9_of_the_daemon_mid_job_takes_its_child_along(tmp_path, astronaut_path,
                                                            speech_path):
    root = tmp_path / "root"
    config = write_config(root)
    (root / "inbox").mkdir(parents=True)
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.4)
    runlog = tmp_path / "runs.log"
    env = {"FACEDROP_TEST_RUNLOG": str(runlog), "FACEDROP_TEST_CHUNK_SLEEP": "2.0"}
    daemon = DaemonProcess(config, tmp_path / "home", tmp_path / "d1.log", **env)
    try:
        _submit(root, "job", astronaut_path, clip)
        child = wait_for(lambda: _runs(runlog, "job"), TIMEOUT, "the job to start")[0]
        assert child != daemon.proc.pid  # the job runs in the worker child
        daemon.proc.kill()
        daemon.wait(10)
        wait_for(lambda: not _alive(child), 10, "the orphaned child to exit")
    finally:
        daemon.stop()
    again = DaemonProcess(config, tmp_path / "home", tmp_path / "d2.log",
                          FACEDROP_TEST_RUNLOG=str(runlog))
    try:
        wait_for(lambda: finished(root / "outbox" / "job"), TIMEOUT, "the job to finish")
    finally:
        again.stop()
    status = read_status(root / "outbox" / "job")
    assert status is not None and (status["state"], status["attempt"]) == ("done", 2), status


def test_sigterm_stops_a_stuck_child_within_the_shutdown_timeout(tmp_path, astronaut_path,
                                                                 speech_path):
    root = tmp_path / "root"
    config = write_config(root, daemon={"shutdown_timeout": 4.0})
    (root / "inbox").mkdir(parents=True)
    runlog = tmp_path / "runs.log"
    daemon = DaemonProcess(config, tmp_path / "home", tmp_path / "daemon.log",
                           FACEDROP_TEST_RUNLOG=str(runlog), FACEDROP_TEST_STUCK_JOBS="stuck")
    try:
        _submit(root, "stuck", astronaut_path,
                speech_clip(speech_path, tmp_path / "clip.wav", 0.4))
        child = wait_for(lambda: _runs(runlog, "stuck"), TIMEOUT, "the job to start")[0]
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.output()
        took = time.monotonic() - started
    finally:
        daemon.stop()
    assert took < 4.0 + 0.5, took
    assert not _alive(child)
    status = read_status(root / "outbox" / "stuck")
    assert status is not None and status["state"] == "queued", status  # given back, uncounted
    with sqlite3.connect(root / "state" / "facedrop.db") as conn:
        assert conn.execute("SELECT counted FROM jobs").fetchall() == [(0,)]
