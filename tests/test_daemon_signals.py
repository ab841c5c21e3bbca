"""Signals with a job running: SIGHUP reloads the daemon in place; a stopped or killed
``facedrop run`` never leaves its ``status.json`` saying "running"."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers.daemon_harness import (
    REPO,
    DaemonProcess,
    cli_env,
    finished,
    make_job,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)
from tests.test_daemon_isolation import _alive, _runs

TIMEOUT = 90.0


def test_sighup_reopens_the_log_and_reloads_with_a_job_running(tmp_path, astronaut_path,
                                                               speech_path):
    root = tmp_path / "root"
    config = write_config(root)
    (root / "inbox").mkdir(parents=True)
    runlog = tmp_path / "runs.log"
    daemon = DaemonProcess(config, tmp_path / "home", tmp_path / "daemon.log",
                           FACEDROP_TEST_RUNLOG=str(runlog), FACEDROP_TEST_CHUNK_SLEEP="1.0")
    pid = daemon.proc.pid
    logs = root / "logs"
    try:
        staged = make_job(tmp_path / "staging", "job", astronaut_path,
                          speech_clip(speech_path, tmp_path / "clip.wav", 0.4))
        staged.rename(root / "inbox" / "job")
        wait_for(lambda: _runs(runlog, "job"), TIMEOUT, "the job to start")
        (logs / "facedrop.log").rename(logs / "facedrop.log.1")  # as logrotate would
        daemon.signal(signal.SIGHUP)
        status = wait_for(lambda: finished(root / "outbox" / "job"), TIMEOUT, "the job to end")
        assert daemon.alive() and daemon.proc.pid == pid, daemon.output()
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.output()
    # Interrupted by the reload (given back uncounted), then run again to the end.
    assert (status["state"], status["attempt"]) == ("done", 2), status
    assert len(_runs(runlog, "job")) == 2
    assert "SIGHUP: configuration reloaded" in (logs / "facedrop.log").read_text()
    assert "SIGHUP: stopping to reload" in (logs / "facedrop.log.1").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_or_killed_run_marks_its_job_failed(tmp_path, astronaut_path, speech_path,
                                                      sig):
    config = write_config(tmp_path / "root")
    job = make_job(tmp_path, "hello", astronaut_path,
                   speech_clip(speech_path, tmp_path / "clip.wav", 0.4))
    out, runlog = tmp_path / "out", tmp_path / "runs.log"
    env = cli_env(config, tmp_path / "home", FACEDROP_TEST_RUNLOG=str(runlog),
                  FACEDROP_TEST_CHUNK_SLEEP="2.0")
    proc = subprocess.Popen([sys.executable, "-m", "watcher.cli", "run", str(job), "--out",
                             str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        child = wait_for(lambda: _runs(runlog, "hello"), TIMEOUT, "the job to start")[0]
        assert child != proc.pid  # the job runs in the worker child
        status = read_status(out / "hello")
        assert status is not None and status["state"] == "running"
        proc.send_signal(sig)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status = wait_for(lambda: finished(out / "hello"), 15, "status.json to say failed")
    assert status["state"] == "failed", status
    assert "stopped before the job finished" in status["error"]
    assert "run the job again" in (out / "hello" / "error.txt").read_text()
    assert not list((out / "hello").glob("*.partial.*"))
    wait_for(lambda: not _alive(child), 10, "the worker child to exit")
    if sig == signal.SIGTERM:
        assert proc.returncode == 1 and "Traceback" not in stderr, stderr
        assert "stopped before the job finished" in stderr
        assert sorted(p.name for p in (out / "hello" / "input").iterdir()) == sorted(
            p.name for p in job.iterdir())
