"""The Intake joined to the inbox scanner, through real ``facedrop watch`` processes.

One classifier (``InboxScanner``) decides for every inbox entry. A ``.zip`` of a job folder is
claimed exactly once (renamed into the work area, unpacked, recorded, then the zip deleted),
also across kills at each of those steps. An entry that will never be ready (a job folder still
unfinished after the grace period, a cut zip) is claimed and ends failed with ``error.txt`` and
its inputs in ``input/``, never run. Waiting and ignored entries show in ``facedrop status``
(text and ``--json``) and are logged once per change. A 250-byte job name ends done in a fitted
outbox folder. A FIFO in a job folder blocks neither the daemon nor SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.crash_invariants import check_invariants
from tests.helpers.daemon_harness import (
    DaemonProcess,
    facedrop,
    finished,
    litter,
    make_job,
    mount_tmpfs,
    read_status,
    speech_clip,
    unmount,
    wait_for,
    write_config,
)
from watcher.filetree import copy_tree, fsync_tree
from watcher.names import utf8_len

TIMEOUT = 90.0
GRACE = 1.5
SHUTDOWN = 5.0  # daemon.shutdown_timeout in write_config


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zip_folder(folder: Path, dest: Path) -> Path:
    """``folder`` zipped as Finder does: one top folder holding the job's files."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return dest


def cut_zip(folder: Path, dest: Path) -> Path:
    """A zip whose copy stopped half-way: no table of contents, never whole."""
    whole = zip_folder(folder, dest.with_suffix(".whole"))
    data = whole.read_bytes()
    whole.unlink()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def half_wav_job(parent: Path, name: str, face: Path, voice: Path) -> Path:
    """A job folder whose recording stopped half-way (its header promises more)."""
    folder = make_job(parent, name, face, voice)
    data = (folder / voice.name).read_bytes()
    (folder / voice.name).write_bytes(data[: len(data) // 2])
    return folder


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        self.config = write_config(self.root, daemon={"incomplete_grace_seconds": GRACE})
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.inbox, self.outbox = self.root / "inbox", self.root / "outbox"
        self.state = self.root / "state"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.runlog = tmp_path / "runs.log"
        self.procs: list[DaemonProcess] = []

    def start(self, **env: str) -> DaemonProcess:
        proc = DaemonProcess(self.config, self.home, self.tmp / f"d{len(self.procs)}.log",
                             FACEDROP_TEST_RUNLOG=str(self.runlog), **env)
        self.procs.append(proc)
        return proc

    def runs(self, name: str) -> list[str]:
        if not self.runlog.exists():
            return []
        return [line.split("\t")[3] for line in self.runlog.read_text().splitlines()
                if line.split("\t")[0] == name]

    def status_json(self) -> dict:
        out = facedrop(self.config, self.home, "status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    for proc in e.procs:
        proc.stop()


@pytest.fixture
def voice(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "voice.wav", 0.4)


def test_a_zipped_job_ends_done_once_and_the_zip_is_gone(env, astronaut_path, voice):
    staged = make_job(env.tmp / "staging", "zipped", astronaut_path, voice)
    inputs = {p.name: sha(p) for p in staged.iterdir()}
    zip_folder(staged, env.tmp / "zipped.zip").rename(env.inbox / "zipped.zip")
    daemon = env.start()
    status = wait_for(lambda: daemon.alive() and finished(env.outbox / "zipped"), TIMEOUT,
                      "the zipped job")
    assert status["state"] == "done", daemon.output()
    folder = env.outbox / "zipped"
    assert {p.name: sha(p) for p in (folder / "input").iterdir()} == inputs
    assert (folder / "zipped.mp4").is_file()
    assert env.runs("zipped").count("start") == 1
    assert list(env.inbox.iterdir()) == []
    assert list((env.state / "work").iterdir()) == []
    assert litter(env.inbox, env.outbox, env.state) == []


def test_entries_that_never_become_ready_end_failed_with_their_inputs_never_run(
    env, astronaut_path, voice
):
    half = half_wav_job(env.tmp / "staging", "half", astronaut_path, voice)
    half_inputs = {p.name: sha(p) for p in half.iterdir()}
    half.rename(env.inbox / "half")
    cut = cut_zip(make_job(env.tmp / "staging", "cut", astronaut_path, voice),
                  env.tmp / "cut.zip")
    cut_sha = sha(cut)
    cut.rename(env.inbox / "cut.zip")
    daemon = env.start()
    pid = daemon.proc.pid
    for name, inputs in (("half", half_inputs), ("cut", {"cut.zip": cut_sha})):
        folder = env.outbox / name
        status = wait_for(lambda f=folder: daemon.alive() and finished(f), TIMEOUT, name)
        assert status["state"] == "failed", (name, status)
        assert {p.name: sha(p) for p in (folder / "input").iterdir()} == inputs, name
        error = (folder / "error.txt").read_text()
        assert f"File: {folder / 'input'}" in error, error
        assert "Fix: " in error, error
        assert env.runs(name) == [], name  # never run
    half_error = (env.outbox / "half" / "error.txt").read_text()
    # The parser's own words name the incomplete file where the user finds it.
    assert "is incomplete" in half_error, half_error
    assert f"File: {env.outbox / 'half' / 'input' / 'voice.wav'}" in half_error, half_error
    assert "cut.zip" in (env.outbox / "cut" / "error.txt").read_text()
    time.sleep(1.0)  # a few more scans: failed is final, never retried
    assert read_status(env.outbox / "half")["attempt"] == 0
    assert list(env.inbox.iterdir()) == [] and list((env.state / "work").iterdir()) == []
    assert daemon.alive() and daemon.proc.pid == pid


def test_waiting_and_ignored_entries_show_in_status_and_are_logged_once(
    env, astronaut_path, voice
):
    (env.inbox / "notes.txt").write_text("not a job")
    (env.inbox / "photo.png").write_bytes(astronaut_path.read_bytes())
    (env.inbox / "empty").mkdir()
    daemon = env.start()

    def entries() -> dict[str, tuple[str, str]]:
        data = env.status_json()
        return {e["name"]: (e["verdict"], e["reason"]) for e in data["inbox"]}

    got = wait_for(lambda: len(entries()) == 3 and entries(), TIMEOUT, "three verdicts")
    assert got["notes.txt"][0] == "ignored" and "not a job folder" in got["notes.txt"][1]
    assert got["photo.png"][0] == "ignored" and "loose photo" in got["photo.png"][1]
    assert got["empty"] == ("waiting", "an empty folder")
    text = facedrop(env.config, env.home, "status").stdout
    assert "inbox entry 'photo.png': ignored, a loose photo" in text
    assert "inbox entry 'empty': waiting, an empty folder" in text
    time.sleep(2.0)  # rescan_seconds is 0.5: several more scans, no new log lines
    log_text = (env.root / "logs" / "facedrop.log").read_text()
    assert log_text.count("inbox entry photo.png: ignored") == 1, log_text
    assert log_text.count("inbox entry empty: waiting") == 1, log_text
    # A change is logged (once): the empty folder becomes a job and leaves the list.
    make_job(env.tmp / "staging", "x", astronaut_path, voice)
    for p in (env.tmp / "staging" / "x").iterdir():
        p.rename(env.inbox / "empty" / p.name)
    wait_for(lambda: finished(env.outbox / "empty"), TIMEOUT, "the job")
    assert set(wait_for(lambda: len(entries()) == 2 and entries(), TIMEOUT, "two")) == {
        "notes.txt", "photo.png"}
    assert daemon.alive()


def test_a_250_byte_job_name_ends_done_in_a_fitted_unique_folder_across_a_restart(
    env, astronaut_path, voice
):
    name = "ü" * 125  # 250 bytes of UTF-8, 125 characters
    assert utf8_len(name) == 250
    limit = os.pathconf(env.inbox, "PC_NAME_MAX")
    first = env.start()
    pid = first.proc.pid
    make_job(env.tmp / "s1", name, astronaut_path, voice).rename(env.inbox / name)
    status = wait_for(lambda: first.alive() and finished(env.outbox / name), TIMEOUT, "first")
    assert status["state"] == "done", first.output()
    assert first.alive() and first.proc.pid == pid
    first.stop()
    assert first.proc.returncode == 0
    second = env.start()  # a restart with the long name in the outbox and the database
    make_job(env.tmp / "s2", name, astronaut_path, voice).rename(env.inbox / name)

    def second_folder() -> Path | None:
        others = [p for p in env.outbox.iterdir() if p.name != name]
        return others[0] if others and finished(others[0]) else None

    folder = wait_for(lambda: second.alive() and second_folder(), TIMEOUT, "second")
    assert read_status(folder)["state"] == "done", second.output()
    assert folder.name.endswith(" (2)") and utf8_len(folder.name) <= limit
    assert folder.name.startswith("ü" * 100)
    assert len(list(folder.glob("*.mp4"))) == 1 and (folder / "input" / "job.yaml").is_file()
    assert sorted(p.name for p in env.outbox.iterdir()) == sorted([name, folder.name])
    assert second.alive()
    second.stop()
    assert second.proc.returncode == 0


def test_a_fifo_in_a_job_folder_blocks_neither_the_daemon_nor_sigterm(
    env, astronaut_path, voice
):
    staged = make_job(env.tmp / "staging", "piped", astronaut_path, voice)
    os.mkfifo(staged / "extra.pipe")
    daemon = env.start()
    pid = daemon.proc.pid
    try:
        staged.rename(env.inbox / "piped")
        status = wait_for(lambda: daemon.alive() and finished(env.outbox / "piped"), TIMEOUT,
                          "the job with a FIFO")
        assert status["state"] in ("done", "failed")
        make_job(env.tmp / "staging", "after", astronaut_path, voice).rename(env.inbox / "after")
        status = wait_for(lambda: daemon.alive() and finished(env.outbox / "after"), TIMEOUT,
                          "a later job")
        assert status["state"] == "done"
        assert daemon.proc.pid == pid
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(SHUTDOWN + 5) == 0
        assert time.monotonic() - started < SHUTDOWN + 1
    finally:
        for fifo in env.tmp.rglob("extra.pipe"):  # free a reader if one ever blocked
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def test_outbox_copy_and_fsync_never_open_a_fifo(tmp_path, astronaut_path):
    src = tmp_path / "job"
    src.mkdir()
    (src / "face.png").write_bytes(astronaut_path.read_bytes())
    (src / "sub").mkdir()
    os.mkfifo(src / "a.pipe")
    os.mkfifo(src / "sub" / "b.pipe")
    result: list[object] = []

    def work() -> None:
        fsync_tree(src)
        result.append(copy_tree(src, tmp_path / "copy"))
        fsync_tree(tmp_path / "copy")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # free it, then fail
        for fifo in src.rglob("*.pipe"):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("copy_tree or fsync_tree opened a FIFO and blocked")
    assert result == [["a.pipe", "sub/b.pipe"]] or sorted(result[0]) == ["a.pipe", "sub/b.pipe"]
    assert sha(tmp_path / "copy" / "face.png") == sha(src / "face.png")
    assert not (tmp_path / "copy" / "a.pipe").exists()


# ---- kills at each step of a zip claim and of a failed claim -----------------------------------

ZIP_POINTS = ["claim.slot", "claim.moved", "claim.unzipped", "claim.reserved", "claim.enqueued",
              "finish.published"]
CUT_POINTS = ["claim.moved", "claim.reserved", "claim.failing", "finish.recorded"]
HALF_POINTS = ["claim.slot", "claim.moved", "claim.reserved", "claim.failing", "finish.error"]


CROSS_POINTS = ["claim.marked", "claim.copied", "claim.renamed"]


def test_kill_9_at_each_step_of_zip_and_failed_claims(env, astronaut_path, voice):
    trials = ([("zip", p) for p in ZIP_POINTS] + [("cut", p) for p in CUT_POINTS]
              + [("half", p) for p in HALF_POINTS])
    kills = run_trials(env, astronaut_path, voice, trials)
    print(f"zip and failed claims: {kills} kills at {len(trials)} points")
    assert kills == len(trials)


# the same kill points again across filesystems (~11 s); one filesystem stays in make test
@pytest.mark.slow
def test_kill_9_at_each_step_of_zip_and_failed_claims_across_filesystems(
    env, astronaut_path, voice
):
    why = mount_tmpfs(env.state)
    if why:
        print(f"cross-filesystem zip crash run skipped: {why}")
        pytest.skip(why)
    try:
        trials = ([("zip", p) for p in CROSS_POINTS + ["claim.unzipped", "finish.inputs_copied"]]
                  + [("cut", p) for p in CROSS_POINTS] + [("half", p) for p in CROSS_POINTS])
        kills = run_trials(env, astronaut_path, voice, trials)
    finally:
        for proc in env.procs:
            proc.stop()
        unmount(env.state)
    print(f"zip and failed claims across filesystems: {kills} kills at {len(trials)} points")
    assert kills == len(trials)


def run_trials(env: Env, face: Path, voice: Path, trials: list[tuple[str, str]]) -> int:
    """One job per trial, a daemon killed at the trial's point; then one to finish them all."""
    astronaut_path = face
    jobs: dict[str, tuple[bool, dict[str, str]]] = {}
    kills = 0
    for i, (kind, point) in enumerate(trials):
        name = f"{kind}-{i:02d}"
        staging = env.tmp / "staging"
        if kind == "zip":
            folder = make_job(staging, name, astronaut_path, voice)
            jobs[name] = (True, {p.name: sha(p) for p in folder.iterdir()})
            zip_folder(folder, env.tmp / f"{name}.zip").rename(env.inbox / f"{name}.zip")
        elif kind == "cut":
            cut = cut_zip(make_job(staging, name, astronaut_path, voice), env.tmp / f"{name}.zip")
            jobs[name] = (False, {cut.name: sha(cut)})
            cut.rename(env.inbox / cut.name)
        else:
            folder = half_wav_job(staging, name, astronaut_path, voice)
            jobs[name] = (False, {p.name: sha(p) for p in folder.iterdir()})
            folder.rename(env.inbox / name)
        proc = env.start(FACEDROP_CRASH_AT=point)
        try:
            code = proc.wait(TIMEOUT)
        except Exception as err:
            raise AssertionError(f"{kind} {point}: never reached\n{proc.output()}") from err
        assert code == -signal.SIGKILL, (kind, point, code, proc.output())
        kills += 1
    final = env.start()
    pid = final.proc.pid

    def all_finished() -> bool:
        assert final.alive(), final.output()
        return all(finished(env.outbox / name) for name in jobs)

    wait_for(all_finished, TIMEOUT, "every job to finish")
    final.stop()
    assert final.proc.returncode == 0 and final.proc.pid == pid
    check_invariants(jobs, env.inbox, env.outbox, env.state, env.runlog)
    # check_invariants: one row, one outbox folder, one final transition per job, and no run
    # after its result was recorded (a kill while the worker thread is mid-job, at a claim step
    # of another job, may cost that job a rerun of an unrecorded attempt).
    return kills
