"""Environment faults pause the daemon and never fail a job: real disks, a real daemon process.

The outbox and the state folder (with the work area and the database) each get their own tmpfs,
so the test can make the outbox read-only and fill the state disk for real; the stand-in
pipeline needs a weights file (``FACEDROP_TEST_WEIGHTS``) that the test removes and restores.
Throughout, the same daemon process keeps running, ``facedrop status --json`` answers and names
the fault, each fault is logged once and cleared by itself, and every job ends done.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.helpers.daemon_harness import (
    DaemonProcess,
    facedrop,
    finished,
    litter,
    make_job,
    mount_tmpfs,
    remount,
    speech_clip,
    unmount,
    wait_for,
    write_config,
)
from watcher.faults import FaultKind, Places, classify
from watcher.sqlite_queue import SqliteQueue

TIMEOUT = 60.0
WEIGHTS = "standin.pth"


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its disk is full; return the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def disks(tmp_path: Path):
    root = tmp_path / "root"
    mounted: list[Path] = []
    for name, size in (("outbox", "64m"), ("state", "16m")):
        why = mount_tmpfs(root / name, size)
        if why:
            for path in mounted:
                unmount(path)
            print(f"environment-fault test skipped: {why}")
            pytest.skip(why)
        mounted.append(root / name)
    yield root
    for path in mounted:
        unmount(path)


def status_json(config: Path, home: Path) -> dict:
    result = facedrop(config, home, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def paused_kinds(config: Path, home: Path) -> list[str]:
    return [p["kind"] for p in status_json(config, home)["paused"]]


def test_faults_pause_and_resume_without_failing_a_job(disks, tmp_path, astronaut_path,
                                                       speech_path):
    root = disks
    config = write_config(root)
    home = tmp_path / "home"
    home.mkdir()
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.4)
    weights = root / "weights"
    weights.mkdir()
    (weights / WEIGHTS).write_bytes(b"weights")
    inbox, outbox, state = root / "inbox", root / "outbox", root / "state"
    inbox.mkdir()
    runlog = tmp_path / "runs.log"
    daemon = DaemonProcess(config, home, tmp_path / "daemon.log", FACEDROP_TEST_WEIGHTS=WEIGHTS,
                           FACEDROP_TEST_RUNLOG=str(runlog))
    pid = daemon.proc.pid

    def submit(name: str) -> None:
        make_job(root / "staging", name, astronaut_path, clip).rename(inbox / name)

    def wait_done(name: str) -> None:
        def check():
            assert daemon.alive(), daemon.output()
            return finished(outbox / name)

        assert wait_for(check, TIMEOUT, f"{name} to finish")["state"] == "done"

    def wait_paused(kind: str) -> dict:
        wait_for(lambda: kind in paused_kinds(config, home), TIMEOUT, f"status to say {kind}")
        report = status_json(config, home)
        assert daemon.alive() and report["daemon"]["pid"] == pid
        return report

    try:
        submit("before")
        wait_done("before")

        # 1. The outbox becomes read-only: the claim waits, then completes by itself.
        remount(outbox, "ro")
        submit("readonly")
        report = wait_paused("outbox")
        assert "Read-only file system" in report["paused"][0]["reason"]
        text = facedrop(config, home, "status").stdout
        assert "paused (outbox)" in text
        remount(outbox, "rw")
        wait_done("readonly")
        wait_for(lambda: not paused_kinds(config, home), TIMEOUT, "the pause to clear")

        # 2. The state disk (work area and database) fills up, then space is freed.
        filler = fill(state)
        submit("statefull")
        wait_paused("state")
        assert not (outbox / "statefull").exists() or not finished(outbox / "statefull")
        filler.unlink()
        wait_done("statefull")

        # 3. The weights disappear: the job waits instead of failing; they come back.
        (weights / WEIGHTS).rename(tmp_path / WEIGHTS)
        submit("noweights")
        wait_paused("weights")
        queued = status_json(config, home)["jobs"]["queued"]
        assert [j["name"] for j in queued] == ["noweights"]
        (tmp_path / WEIGHTS).rename(weights / WEIGHTS)
        wait_done("noweights")
        wait_for(lambda: not paused_kinds(config, home), TIMEOUT, "the pause to clear")
        assert daemon.alive() and daemon.proc.pid == pid  # never exited, never restarted
    finally:
        daemon.stop()
    with sqlite3.connect(state / "facedrop.db") as conn:
        rows = dict(conn.execute("SELECT name, state || '/' || counted FROM jobs").fetchall())
    # Every job done, and no attempt was used up by a fault that was not the job's.
    assert rows == {n: "done/1" for n in ("before", "readonly", "statefull", "noweights")}
    log = (root / "logs" / "facedrop.log").read_text()
    paused = [line for line in log.splitlines() if "faults: paused" in line]
    resumed = [line for line in log.splitlines() if "faults: resumed" in line]
    assert len(paused) == 3 and len(resumed) == 3, (paused, resumed)  # once per fault
    assert litter(inbox, outbox, state) == []


def test_a_full_state_disk_is_a_state_fault_not_a_crash(tmp_path):
    """SQLite's 'database or disk is full' is no OSError: it must still be seen as a fault."""
    state = tmp_path / "state"
    why = mount_tmpfs(state, "1m")
    if why:
        print(f"skipped: {why}")
        pytest.skip(why)
    try:
        queue = SqliteQueue(state)
        fill(state)
        with pytest.raises(sqlite3.OperationalError) as caught:
            for i in range(100_000):
                queue.enqueue(f"job{i}", f"slot/job{i}" + "x" * 200, f"job{i}")
        places = Places(tmp_path / "in", tmp_path / "out", state, tmp_path / "w")
        fault = classify(caught.value, places, FaultKind.OUTBOX)
        assert fault is not None and fault.kind is FaultKind.STATE
        assert "disk is full" in fault.reason
        queue.close()
    finally:
        os.sync()
        unmount(state)


def test_inbox_link_target_vanishes_or_inbox_becomes_a_file(tmp_path, astronaut_path,
                                                            speech_path):
    """The inbox's link target disappears, then the inbox path is a file, even at a restart:
    the daemon keeps running, says why in status (with every inbox entry's verdict), and claims
    again as soon as the inbox is back."""
    root = tmp_path / "root"
    config = write_config(root)
    home = tmp_path / "home"
    home.mkdir()
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.4)
    target = tmp_path / "dropbox-inbox"
    target.mkdir()
    inbox, outbox = root / "inbox", root / "outbox"
    inbox.symlink_to(target)
    daemons = [DaemonProcess(config, home, tmp_path / "d0.log")]
    pid = daemons[0].proc.pid

    def daemon() -> DaemonProcess:
        assert daemons[-1].alive(), daemons[-1].output()
        return daemons[-1]

    def wait_done(name: str) -> None:
        status = wait_for(lambda: daemon() and finished(outbox / name), TIMEOUT, name)
        assert status["state"] == "done"

    try:
        (target / "notes.txt").write_text("not a job")
        make_job(root / "staging", "first", astronaut_path, clip).rename(target / "first")
        wait_done("first")
        entries = wait_for(lambda: status_json(config, home)["inbox"], TIMEOUT, "verdicts")
        assert entries == [{"name": "notes.txt", "verdict": "ignored",
                            "reason": entries[0]["reason"]}]
        assert "not a job folder or .zip" in entries[0]["reason"]
        assert "inbox entry 'notes.txt': ignored" in facedrop(config, home, "status").stdout

        target.rename(tmp_path / "unplugged")  # the synced folder goes away
        wait_for(lambda: "inbox" in paused_kinds(config, home), TIMEOUT, "the inbox fault")
        reason = status_json(config, home)["paused"][0]["reason"]
        assert "which is gone" in reason and str(target) in reason
        (tmp_path / "unplugged").rename(target)
        make_job(root / "staging", "second", astronaut_path, clip).rename(target / "second")
        wait_done("second")

        inbox.unlink()
        inbox.write_text("oops")  # the inbox path is now a file
        wait_for(lambda: "inbox" in paused_kinds(config, home), TIMEOUT, "the inbox fault")
        assert "is a file" in status_json(config, home)["paused"][0]["reason"]
        daemons[0].stop()
        daemons.append(DaemonProcess(config, home, tmp_path / "d1.log"))  # a restart
        wait_for(lambda: "inbox" in paused_kinds(config, home), TIMEOUT, "the inbox fault")
        assert daemon().alive()
        inbox.unlink()  # the user moves the file away: the daemon makes the folder again
        wait_for(inbox.is_dir, TIMEOUT, "the inbox to be recreated")
        make_job(root / "staging", "third", astronaut_path, clip).rename(inbox / "third")
        wait_done("third")
        assert daemons[0].proc.returncode == 0 and pid == daemons[0].proc.pid
    finally:
        for proc in daemons:
            proc.stop()
    log = (root / "logs" / "facedrop.log").read_text()
    assert log.count("faults: paused intake") == 3  # gone, a file, a file again after restart
