"""A fleet end to end: a real redis-server, real ``facedrop watch`` and ``facedrop worker``
processes, the shared-folder storage, the stand-in pipeline writing real media.

Shown here: many jobs over three workers run exactly once and make the outbox the local backend
makes; a worker killed at any step of a job leaves exactly one outbox entry; the intake killed
while results arrive loses and doubles nothing; Redis restarted or away loses nothing; a worker
without weights gives its jobs to the others and says why in ``facedrop status``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.crash_invariants import check_invariants, sha
from tests.helpers.daemon_harness import (
    DaemonProcess,
    facedrop,
    finished,
    make_job,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)
from tests.helpers.fleet_harness import WorkerProcess, fleet_config, status_json, stop_all
from tests.helpers.redis_server import NO_REDIS, RedisServer, redis_server_binary

RESULT_FILES = ["input", "job.yaml", "status.json", "timing.json", "timing.log"]


@pytest.fixture
def redis_server(tmp_path: Path):
    binary = redis_server_binary()
    if binary is None:
        print(f"SKIPPED: {NO_REDIS}")
        pytest.skip(NO_REDIS)
    server = RedisServer(tmp_path / "redis", binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path_factory.mktemp("clip") / "short.wav", 0.6)


class Fleet:
    """One intake and its workers under ``root``; everything started is stopped by ``close``."""

    def __init__(self, root: Path, server: RedisServer, **sections: dict[str, Any]) -> None:
        self.root = root
        self.config = fleet_config(root, server.url, root / "shared", **sections)
        self.inbox, self.outbox = root / "inbox", root / "outbox"
        self.state = root / "state"
        self.runlog = root / "runs.log"
        self.runlog.touch()
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.intake: DaemonProcess | None = None
        self.workers: list[WorkerProcess] = []
        self._n = 0

    def start_intake(self, **env: str) -> DaemonProcess:
        self._n += 1
        self.intake = DaemonProcess(self.config, self.root, self.root / f"intake{self._n}.log",
                                    **env)
        return self.intake

    def start_worker(self, config: Path | None = None, *args: str, **env: str
                     ) -> WorkerProcess:
        self._n += 1
        worker = WorkerProcess(config or self.config, self.root,
                               self.root / f"worker{self._n}.log", *args,
                               FACEDROP_TEST_RUNLOG=str(self.runlog), **env)
        self.workers.append(worker)
        return worker

    def submit(self, names: list[str], face: Path, audio: Path) -> dict[str, dict[str, str]]:
        inputs = {}
        for name in names:
            folder = make_job(self.root / "staging", name, face, audio)
            inputs[name] = {p.name: sha(p) for p in folder.iterdir()}
            folder.rename(self.inbox / name)
        return inputs

    def wait_done(self, names: list[str], timeout: float) -> None:
        try:
            wait_for(lambda: all(finished(self.outbox / n) for n in names), timeout,
                     f"{len(names)} jobs to finish")
        except AssertionError as err:
            raise AssertionError(f"{err}; logs:\n{self.logs()}") from None

    def runs(self) -> list[list[str]]:
        return [line.split("\t") for line in self.runlog.read_text().splitlines()]

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")):
            if path.name != "runs.log":
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        stop_all(*self.workers)
        if self.intake is not None:
            self.intake.stop()


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer):
    made: list[Fleet] = []

    def make(**sections: dict[str, Any]) -> Fleet:
        made.append(Fleet(tmp_path / f"fleet{len(made)}", redis_server, **sections))
        return made[-1]

    yield make
    for f in made:
        f.close()


def folder_digest(folder: Path) -> dict[str, Any]:
    """What must be equal between two outbox folders of the same job (times aside)."""
    status = json.loads((folder / "status.json").read_text())
    timing = json.loads((folder / "timing.json").read_text())
    return {
        "files": sorted(p.name for p in folder.iterdir()),
        "input": {p.name: sha(p) for p in (folder / "input").iterdir()},
        "job.yaml": (folder / "job.yaml").read_text(),
        "status": {k: status[k] for k in ("state", "job", "attempt", "video")},
        "timing": {k: timing[k] for k in ("job", "frames", "fps", "audio_seconds", "device")},
        "video": hashlib.sha256((folder / status["video"]).read_bytes()).hexdigest(),
    }


@pytest.mark.slow  # thirty jobs through three real workers and Redis (~15 s)
def test_three_workers_run_thirty_jobs_once_each_as_the_local_backend_would(
        fleet, tmp_path: Path, astronaut_path: Path, clip: Path) -> None:
    # The local backend's outbox for the same job, for comparison.
    local_root = tmp_path / "local"
    local_config = write_config(local_root)
    (local_root / "inbox").mkdir(parents=True)
    local = DaemonProcess(local_config, local_root, local_root / "daemon.log")
    try:
        folder = make_job(local_root / "staging", "job00", astronaut_path, clip)
        folder.rename(local_root / "inbox" / "job00")
        wait_for(lambda: finished(local_root / "outbox" / "job00"), 60, "the local job")
    finally:
        local.stop()
    expected = folder_digest(local_root / "outbox" / "job00")

    f = fleet()
    f.start_intake()
    for _ in range(3):
        f.start_worker()
    cards = wait_for(lambda: (c := worker_cards(f)) and sum(x["state"] == "idle" for x in c)
                     == 3 and c, 60, "three idle workers in facedrop status")
    assert {c["pid"] for c in cards} == {str(w.pid) for w in f.workers}
    assert all(c["host"] and c["device"] in ("cpu", "cuda", "mps") and
               time.time() - float(c["heartbeat"]) < 5 for c in cards)
    names = [f"job{n:02d}" for n in range(30)]
    inputs = f.submit(names, astronaut_path, clip)
    f.wait_done(names, 150)
    f.close()

    runs = f.runs()
    assert Counter(job for job, _pid, _at, what in runs if what == "start") == Counter(names)
    assert Counter(job for job, _pid, _at, what in runs if what == "end") == Counter(names)
    assert len({pid for _job, pid, _at, _what in runs}) == 3  # all three workers took jobs
    check_invariants({n: (True, inputs[n]) for n in names}, f.inbox, f.outbox, f.state,
                     f.runlog)
    for name in names:
        got = folder_digest(f.outbox / name)
        want = json.loads(json.dumps(expected).replace("job00", name))
        assert got == want, name


# Where a worker is killed (FACEDROP_CRASH_AT), and the attempt the job then ends with: a kill
# before the run is counted leaves attempt 1 to the next worker; a kill after the run is
# counted and before its commit makes the next worker's run attempt 2; after the commit the
# committed attempt 1 stands and is never run again.
WORKER_KILLS = {
    "fleet.received": 1,  # message taken, nothing recorded
    "fleet.claimed": 1,  # the job's owner recorded, the run not counted
    "fleet.started": 2,  # the run counted, nothing fetched
    "fleet.fetched": 2,  # the payload fetched from storage, the pipeline not started
    "fleet.progress": 2,  # the pipeline running (first progress reported)
    "fleet.rendered": 2,  # the video made and verified, nothing stored
    "fleet.result_put": 2,  # one result file stored, the others not
    "fleet.result_written": 2,  # every result file stored, not committed
    "fleet.committed": 1,  # committed, the owner not released, not acknowledged
    "fleet.released": 1,  # committed and released, not acknowledged
    "fleet.acked": 1,  # acknowledged
}


def worker_cards(f: Fleet) -> list[dict[str, str]]:
    return list(status_json(f.config, f.root).get("fleet", {}).get("workers", []))


@pytest.mark.slow  # a real worker killed at every step (~25 s)
def test_a_worker_killed_at_any_step_leaves_exactly_one_outbox_entry(
        fleet, astronaut_path: Path, clip: Path) -> None:
    f = fleet()
    doomed = {point: f.start_worker(FACEDROP_CRASH_AT=point) for point in WORKER_KILLS}
    wait_for(lambda: sum(c["state"] == "idle" for c in worker_cards(f)) == len(doomed), 90,
             "every doomed worker to take jobs")
    f.start_intake()
    names = [f"kill{n:02d}" for n in range(len(WORKER_KILLS))]
    inputs = f.submit(names, astronaut_path, clip)  # one job per doomed worker (prefetch 1)
    wait_for(lambda: not any(w.alive() for w in doomed.values()), 60,
             f"every doomed worker to be killed; {f.logs()}")
    assert all(w.proc.returncode == -signal.SIGKILL for w in doomed.values())
    dead_at = time.monotonic()
    f.start_worker()
    f.start_worker()
    f.wait_done(names, 60)
    # Redelivered within the heartbeat timeout (3 s) plus one job's time, with the start-up
    # of two fresh workers on busy cores as the margin.
    assert time.monotonic() - dead_at < 30
    f.close()

    check_invariants({n: (True, inputs[n]) for n in names}, f.inbox, f.outbox, f.state,
                     f.runlog)
    attempts = Counter(read_status(f.outbox / n)["attempt"] for n in names)
    assert attempts == Counter(WORKER_KILLS.values())
    runs = f.runs()
    # Runs reaching the pipeline: one each for the four early kills, the killed one plus the
    # rerun for progress/rendered/result_put/result_written (no end for progress), and one
    # for the three kills after the commit (never rerun).
    assert sum(what == "start" for *_x, what in runs) == 4 + 2 + 3 * 2 + 3
    # The job runs in the worker's child: killed at "progress", the worker's child may finish
    # its render in the instant before it sees its parent gone (its result is never stored).
    ends = sum(what == "end" for *_x, what in runs)
    assert 4 + 1 + 3 * 2 + 3 <= ends <= 4 + 1 + 3 * 2 + 3 + 1
    with sqlite3.connect(f.state / "facedrop.db") as conn:
        finals = conn.execute("SELECT count(*) FROM attempts WHERE to_state='done'").fetchone()
    assert finals == (len(names),)


INTAKE_KILLS = ["fleet.sent#3", "fleet.fetched#1", "finish.recorded#1", "fleet.finished#1",
                "finish.published#1"]


@pytest.mark.slow  # the intake killed repeatedly with Redis running (~15 s)
def test_the_intake_killed_while_results_arrive_loses_and_doubles_nothing(
        fleet, astronaut_path: Path, clip: Path) -> None:
    f = fleet()
    for _ in range(3):
        f.start_worker(FACEDROP_TEST_CHUNK_SLEEP="0.4")
    names = [f"res{n:02d}" for n in range(15)]
    inputs = f.submit(names, astronaut_path, clip)
    for point in INTAKE_KILLS:
        intake = f.start_intake(FACEDROP_CRASH_AT=point)
        wait_for(lambda i=intake: not i.alive(), 60, f"the intake to be killed at {point}; "
                 f"{f.logs()}")
        assert intake.proc.returncode == -signal.SIGKILL, intake.output()
        intake.stop()
        assert not all(finished(f.outbox / n) for n in names), "killed too late"
    f.start_intake()
    f.wait_done(names, 90)
    f.close()

    check_invariants({n: (True, inputs[n]) for n in names}, f.inbox, f.outbox, f.state,
                     f.runlog)
    runs = f.runs()
    assert Counter(job for job, _pid, _at, what in runs if what == "start") == Counter(names)
    assert all(read_status(f.outbox / n)["attempt"] == 1 for n in names)


@pytest.mark.slow  # Redis restarted under a running fleet (~15 s)
def test_redis_restarted_or_away_loses_nothing_and_the_intake_says_it_paused(
        fleet, redis_server: RedisServer, astronaut_path: Path, clip: Path) -> None:
    f = fleet()
    f.start_intake()
    for _ in range(2):
        f.start_worker(FACEDROP_TEST_CHUNK_SLEEP="0.3")
    names = [f"red{n:02d}" for n in range(10)]
    inputs = f.submit(names, astronaut_path, clip)
    wait_for(lambda: sum(bool(finished(f.outbox / n)) for n in names) >= 2, 60,
             "two jobs to finish")
    redis_server.stop()  # SIGTERM: the AOF (fsync always) holds every queued message
    status = wait_for(
        lambda: (s := status_json(f.config, f.root)) and any(
            p["kind"] == "fleet" for p in s["paused"]) and s, 30, "the intake to pause")
    (paused,) = [p for p in status["paused"] if p["kind"] == "fleet"]
    assert "Redis server at 127.0.0.1" in paused["reason"] and "cannot be reached" in \
        paused["reason"] and "start Redis" in paused["fix"]
    assert "cannot be reached" in status["fleet"]["error"]
    text = " ".join(facedrop(f.config, f.root, "status").stdout.split())
    assert "paused (fleet)" in text and "the Redis server" in text
    time.sleep(2)
    assert all(w.alive() for w in f.workers)
    redis_server.start()  # same port, same folder: the AOF is replayed
    f.wait_done(names, 90)
    assert all(w.alive() for w in f.workers)  # the workers reconnected, nobody exited
    wait_for(lambda: not status_json(f.config, f.root)["paused"], 20, "the pause to clear")
    f.close()
    check_invariants({n: (True, inputs[n]) for n in names}, f.inbox, f.outbox, f.state,
                     f.runlog)


def test_a_worker_without_weights_leaves_its_jobs_to_the_others_and_says_why(
        fleet, tmp_path: Path, astronaut_path: Path, clip: Path) -> None:
    f = fleet()
    weights = yaml.safe_load(f.config.read_text())
    (Path(weights["paths"]["weights"])).mkdir(parents=True)
    (Path(weights["paths"]["weights"]) / "standin.bin").write_bytes(b"weights")
    weights["paths"]["weights"] = str(tmp_path / "empty-weights")
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(weights))
    lacking = f.start_worker(bare, FACEDROP_TEST_WEIGHTS="standin.bin")
    wait_for(lambda: any(c["state"] == "idle" for c in worker_cards(f)), 60,
             "the worker without weights to start")
    f.start_intake()
    names = [f"w{n:02d}" for n in range(6)]
    inputs = f.submit(names, astronaut_path, clip)
    card = wait_for(lambda: next((c for c in worker_cards(f)
                                  if c["state"] == "not taking jobs"), None), 60,
                    f"the worker to stop taking jobs; {f.logs()}")
    assert str(lacking.pid) in card["id"]
    assert "the stand-in model's weights are missing" in card["reason"]
    text = " ".join(facedrop(f.config, f.root, "status").stdout.split())
    assert f"worker {card['id']}" in text and "not taking jobs (the stand-in model's weights" \
        in text
    assert not any(finished(f.outbox / n) for n in names)  # nothing failed meanwhile
    healthy = f.start_worker(FACEDROP_TEST_WEIGHTS="standin.bin")
    f.wait_done(names, 90)
    # Every run was in the healthy worker's child (jobs run in a worker's child process).
    pids = {pid for _job, pid, _at, _what in f.runs()}
    parents = {subprocess.run(["ps", "-o", "ppid=", "-p", pid], capture_output=True,
                              text=True).stdout.strip() for pid in pids}
    f.close()
    check_invariants({n: (True, inputs[n]) for n in names}, f.inbox, f.outbox, f.state,
                     f.runlog)
    assert len(pids) == 1 and parents == {str(healthy.pid)}


def test_cancel_stops_a_running_job_and_a_queued_one_on_any_machine(
        fleet, astronaut_path: Path, speech_path: Path, tmp_path: Path) -> None:
    f = fleet()
    f.start_intake()
    f.start_worker(FACEDROP_TEST_CHUNK_SLEEP="1.0")
    audio = speech_clip(speech_path, tmp_path / "long.wav", 2.0)
    f.submit(["running", "waiting"], astronaut_path, audio)
    wait_for(lambda: (read_status(f.outbox / "running") or {}).get("state") == "running", 60,
             "the first job to run")
    wait_for(lambda: (read_status(f.outbox / "waiting") or {}).get("state") == "queued", 60,
             "the second job to wait")
    for name in ("running", "waiting"):
        done = facedrop(f.config, f.root, "cancel", name)
        assert done.returncode == 0 and f"cancelling {name}" in done.stdout, done.stderr
    f.wait_done(["running", "waiting"], 60)
    for name in ("running", "waiting"):
        folder = f.outbox / name
        assert read_status(folder)["state"] == "failed"
        # the one cancel text (watcher.cancels), as a local cancel writes it
        assert "cancelled (facedrop cancel or the studio page)" in (
            folder / "error.txt").read_text()
        assert sorted(p.name for p in (folder / "input").iterdir()) == [
            "face.png", "job.yaml", "voice.wav"]
        assert not list(folder.glob("*.mp4"))
    missing = facedrop(f.config, f.root, "cancel", "nosuchjob")
    assert missing.returncode != 0 and "no queued or running job" in missing.stderr


@pytest.mark.slow  # a worker process loading every network and rendering a real job
def test_a_worker_runs_the_real_pipeline_on_official_format_weights(
        fleet, model_weights_dir: Path, astronaut_path: Path, speech_path: Path,
        tmp_path: Path) -> None:
    from fractions import Fraction

    from PIL import Image

    from pipeline.media.verify import verify_video
    from tests.helpers.chain_checks import portrait
    from tests.helpers.clips import make_clip
    from watcher.daemon import DEFAULT_PIPELINE

    f = fleet(pipeline={"max_size": 384, "batch_size": 4, "device": "cpu"})
    data = yaml.safe_load(f.config.read_text())
    data["paths"]["weights"] = str(model_weights_dir)
    f.config.write_text(yaml.safe_dump(data))
    drivers = Path(data["paths"]["drivers"])
    drivers.mkdir(parents=True)
    make_clip(drivers / "nod.mp4", astronaut_path, 2, Fraction(25))
    photo = portrait(astronaut_path, tmp_path / "portrait.jpg")
    audio = speech_clip(speech_path, tmp_path / "talk.wav", 0.4)
    f.start_intake()
    worker = f.start_worker(FACEDROP_PIPELINE=DEFAULT_PIPELINE)
    folder = make_job(f.root / "staging", "real", photo, audio, "driving: nod\n")
    folder.rename(f.inbox / "real")
    f.wait_done(["real"], 240)
    out = f.outbox / "real"
    status = read_status(out)
    assert status["state"] == "done", (out / "error.txt").read_text() if (
        out / "error.txt").exists() else f.logs()
    info = verify_video(out / "real.mp4", fps=Fraction(25))
    assert (info.video_codec, info.audio_codec, info.width, info.height) == (
        "h264", "aac", 384, 336)
    stages = {s["name"]: s for s in json.loads((out / "timing.json").read_text())["stages"]}
    assert stages["animate"]["frames"] == 2 and stages["lipsync"]["frames"] == 10
    # the worker's quality report travels with the video into the intake's outbox
    report = json.loads((out / "quality.json").read_text())
    assert status["quality"]["verdict"] == report["verdict"]
    for name in ("preview.jpg", "poster.jpg"):
        with Image.open(out / name) as picture:
            assert min(picture.size) > 0
    assert str(worker.pid) in {c["pid"] for c in worker_cards(f)}


def test_a_worker_pinned_to_a_device_this_machine_lacks_takes_no_jobs_and_says_why(
        fleet) -> None:
    f = fleet()
    worker = f.start_worker(None, "--device", "cuda:7")
    card = wait_for(lambda: next((c for c in worker_cards(f)
                                  if c["state"] == "not taking jobs"), None), 60,
                    "the worker's card")
    assert str(worker.pid) in card["id"] and card["device"] == "cuda:7"
    assert "CUDA device 7 is not available" in card["reason"]
    assert worker.alive()  # it waits for the device; it does not exit


def test_queue_config_is_validated_and_local_by_default(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from watcher.config import QueueBackend, load_config

    assert load_config(write_config(tmp_path / "plain")).queue.backend is QueueBackend.LOCAL
    fleet = write_config(tmp_path / "fleet", queue={"backend": "redis"})
    assert load_config(fleet).queue.backend is QueueBackend.REDIS
    bad = write_config(tmp_path / "bad", queue={"backend": "rabbitmq"})
    with pytest.raises(ConfigError, match="'queue.backend' must be one of local, redis") as err:
        load_config(bad)
    assert "redis hands them to a fleet" in err.value.fix
    slow = write_config(tmp_path / "slow", queue={"heartbeat_timeout_seconds": "soon"})
    with pytest.raises(ConfigError, match="'queue.heartbeat_timeout_seconds' must be a number"):
        load_config(slow)
    local = write_config(tmp_path / "local")
    done = facedrop(local, tmp_path, "worker")
    assert done.returncode == 2 and "queue.backend is local" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_stopped_mid_job_gives_it_back_uncounted(
        fleet, astronaut_path: Path, speech_path: Path, tmp_path: Path) -> None:
    f = fleet()
    f.start_intake()
    slow = f.start_worker(FACEDROP_TEST_CHUNK_SLEEP="1.0")
    audio = speech_clip(speech_path, tmp_path / "long.wav", 2.0)
    inputs = f.submit(["handover"], astronaut_path, audio)
    wait_for(lambda: (read_status(f.outbox / "handover") or {}).get("state") == "running", 60,
             "the job to run")
    slow.proc.send_signal(signal.SIGTERM)
    assert slow.proc.wait(timeout=15) == 0  # within daemon.shutdown_timeout, cleanly
    status = wait_for(lambda: (s := read_status(f.outbox / "handover")) and
                      s["state"] == "queued" and s, 30, "the job to be queued again")
    assert status["attempt"] == 1
    f.start_worker()
    f.wait_done(["handover"], 60)
    f.close()
    check_invariants({"handover": (True, inputs["handover"])}, f.inbox, f.outbox, f.state,
                     f.runlog)
    assert read_status(f.outbox / "handover")["attempt"] == 2
    with sqlite3.connect(f.state / "facedrop.db") as conn:
        (counted,) = conn.execute("SELECT counted FROM jobs").fetchone()
    assert counted == 1  # the stopped run was given back, not counted


def test_a_kill_inside_a_worker_s_child_costs_one_counted_attempt_not_the_worker(
        fleet, astronaut_path: Path, clip: Path) -> None:
    f = fleet()
    f.start_intake()
    worker = f.start_worker(FACEDROP_CRASH_AT="child.published")  # its first child dies there
    inputs = f.submit(["inner"], astronaut_path, clip)
    f.wait_done(["inner"], 90)
    assert worker.alive(), worker.output()
    f.close()
    check_invariants({"inner": (True, inputs["inner"])}, f.inbox, f.outbox, f.state, f.runlog)
    assert read_status(f.outbox / "inner")["attempt"] == 2
    pids = [pid for job, pid, _at, what in f.runs() if job == "inner" and what == "start"]
    assert len(pids) == 2 and pids[0] != pids[1]  # a fresh child for the second attempt
    assert "worker child" in worker.output() and "died" in worker.output()
