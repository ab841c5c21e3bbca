"""Fleet benchmark (a command, not a test): ``python -m tests.helpers.fleet_bench``.

1. Throughput with 1, 2 and 3 ``facedrop worker`` processes on the stand-in pipeline with
   sleep-bound jobs (each job sleeps ``--sleep`` seconds per 8-frame chunk), through a real
   ``facedrop watch``, a real redis-server on loopback and the folder storage.
2. The per-job overhead of queue and storage: every Redis and storage call one job makes, from
   the intake's send to its collection (payload files of 1 kB, so bytes do not count), timed
   in one process over ``--rounds`` jobs.

It starts its own redis-server in a temp folder and stops everything it started.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.daemon_harness import DaemonProcess, finished, make_job, speech_clip, wait_for
from tests.helpers.fleet_harness import WorkerProcess, fleet_config, status_json, stop_all
from tests.helpers.redis_server import NO_REDIS, RedisServer, redis_server_binary


def throughput(root: Path, server: RedisServer, workers: int, jobs: int, sleep: float,
               face: Path, audio: Path) -> float:
    """Jobs per minute with ``workers`` workers, from the drop to the last outbox folder."""
    config = fleet_config(root, server.url, root / "shared",
                          queue={"namespace": f"bench{workers}"})
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    intake = DaemonProcess(config, root, root / "intake.log")
    procs = [WorkerProcess(config, root, root / f"worker{n}.log",
                           FACEDROP_TEST_CHUNK_SLEEP=str(sleep)) for n in range(workers)]
    try:
        wait_for(lambda: sum(c["state"] == "idle" for c in
                             status_json(config, root).get("fleet", {}).get("workers", []))
                 == workers, 120, "the workers to start")
        names = [f"b{n:03d}" for n in range(jobs)]
        folders = [make_job(root / "staging", name, face, audio) for name in names]
        start = time.monotonic()
        for folder in folders:
            folder.rename(root / "inbox" / folder.name)
        wait_for(lambda: all(finished(root / "outbox" / n) for n in names), 900, "the jobs")
        return jobs / (time.monotonic() - start) * 60
    finally:
        stop_all(*procs, intake)


def overhead(root: Path, server: RedisServer, rounds: int) -> list[float]:
    """Seconds of queue + storage calls per job (send, take, run bookkeeping, commit, collect)."""
    from watcher.config import QueueBackend, QueueSettings
    from watcher.fleet.broker import QUEUE, job_message, make_broker, redis_client
    from watcher.fleet.ledger import Ledger
    from watcher.fleet.messages import JobMessage, Manifest, Verdict, commit, read_manifest
    from watcher.storage import open_storage
    from watcher.storage.settings import StorageBackend, StorageSettings

    q = QueueSettings(backend=QueueBackend.REDIS, url=server.url, namespace="overhead")
    (root / "shared").mkdir(parents=True)
    storage = open_storage(StorageSettings(StorageBackend.FOLDER, root / "shared", "", "", ""))
    ledger = Ledger(redis_client(q), q.namespace)
    broker = make_broker(q)
    broker.declare_queue(QUEUE)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    src, out = root / "src", root / "out"
    src.mkdir()
    out.mkdir()
    payload = []
    for name in ("face.png", "voice.wav", "job.yaml"):
        (src / name).write_bytes(name.encode() * 100)
        payload.append(src / name)
    results = []
    for name in ("job.yaml", "b.mp4", "timing.json", "timing.log"):
        (out / name).write_bytes(name.encode() * 100)
        results.append(out / name)
    times = []
    for n in range(rounds):
        key = f"k{n:05d}"
        t0 = time.perf_counter()
        # intake: send
        files = {p.name: storage.put_blob(p) for p in payload}
        ledger.register(key, key, key)
        broker.enqueue(job_message(JobMessage(key, key, files).to_json()))
        ledger.mark_sent(key)
        # worker: take, check, count, fetch, progress, store, commit, release, ack
        message = None
        while message is None:
            message = next(consumer)
        msg = JobMessage.from_json(message.args[0])
        assert not ledger.finished(key) and storage.committed(key) is None
        assert not ledger.cancel_requested(key) and ledger.claim(key, "bench") == ""
        attempt, _counted = ledger.begin(key)
        (root / "fetched" / key).mkdir(parents=True)
        for rel, digest in msg.files.items():
            storage.get_blob(digest, root / "fetched" / key / rel)
        ledger.report_progress(key, attempt, "render", 1.0, "bench")
        digests = {p.name: storage.put_result(key, attempt, p.name, p) for p in results}
        commit(storage, key, attempt, Manifest(Verdict.DONE, "bench", tuple(digests)), digests,
               root / "scratch")
        ledger.release(key, "bench")
        consumer.ack(message)
        # intake: collect
        assert ledger.unsent([key]) == [] and ledger.cancelled([key]) == set()
        ledger.progress_of([key])
        got = storage.committed(key)
        assert got is not None
        manifest = read_manifest(storage, key, got[0], root / "scratch")
        (root / "collected" / key).mkdir(parents=True)
        for name in manifest.files:
            storage.get_result(key, got[0], name, root / "collected" / key / name)
        ledger.retire(key)
        storage.discard(key)
        times.append(time.perf_counter() - t0)
    consumer.close()
    broker.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.fleet_bench")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds per 8-frame chunk")
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per job")
    parser.add_argument("--rounds", type=int, default=200, help="jobs timed for the overhead")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="where Redis and the storage folder live (e.g. /dev/shm, to "
                        "leave the disk's fsync time out of the overhead)")
    parser.add_argument("--only-overhead", action="store_true")
    args = parser.parse_args(argv)
    binary = redis_server_binary()
    if binary is None:
        print(NO_REDIS)
        return 1
    from pipeline.example import example_dir

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp)
        # everysec: Redis's own default (the tests use always, to show a restart loses nothing)
        server = RedisServer(root / "redis", binary, appendfsync="everysec")
        server.start()
        try:
            face = example_dir() / "astronaut.jpg"
            audio = speech_clip(example_dir() / "hello.wav", root / "clip.wav", args.seconds)
            rates = {}
            for workers in () if args.only_overhead else (1, 2, 3):
                rates[workers] = throughput(root / f"t{workers}", server, workers, args.jobs,
                                            args.sleep, face, audio)
                print(f"{workers} worker(s): {rates[workers]:.1f} jobs/min "
                      f"({rates[workers] / rates[1]:.2f}x one worker)", flush=True)
            times = overhead(root / "overhead", server, args.rounds)
            ms = sorted(t * 1000 for t in times)
            print(f"queue + storage overhead per job over {len(ms)} jobs: median "
                  f"{statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, "
                  f"max {ms[-1]:.1f} ms (payload and result files of 1 kB)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
