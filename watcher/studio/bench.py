"""``python -m watcher.studio.bench``: how fast the page's data endpoint answers a big studio.

It builds a throwaway state in a temporary folder: ``--jobs`` finished jobs in the queue's
database (each with its outbox folder), a few queued and one running, and ``--inbox`` inbox
verdicts in the runtime file of a "daemon" (this process holds the daemon lock), then serves the
real app on uvicorn and times real HTTP requests for the first page, a deep page of results and
a deep page of the inbox. It prints the median and 95th percentile per request, in ms.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn
import yaml

from watcher.config import Config, load_config
from watcher.daemon import DaemonLock
from watcher.faults import Fault, FaultKind
from watcher.inbox_scan import InboxEntry, Kind, Verdict
from watcher.runtime import RuntimeFile
from watcher.sqlite_queue import DB_NAME, SqliteQueue
from watcher.studio.app import build_app
from watcher.studio.auth import Guard

TARGET_MS = 50.0


def _config(root: Path) -> Config:
    paths = {k: str(root / k) for k in ("inbox", "outbox", "state", "cache", "weights",
                                        "drivers", "logs")}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump({"paths": paths, "daemon": {"notify": False}}))
    config = load_config(path)
    for folder in (config.paths.inbox, config.paths.outbox, config.paths.state):
        folder.mkdir(parents=True, exist_ok=True)
    return config


def _history(config: Config, jobs: int) -> None:
    """``jobs`` finished jobs (every tenth failed), 20 queued, one running.

    The queue makes its own database; the rows are then written in one transaction (through
    the queue's API, one commit per change, 10,000 jobs take minutes on a busy disk).
    """
    SqliteQueue(config.paths.state).close()
    now = time.time()
    rows = []
    for i in range(jobs + 21):
        name = f"job-{i:05d}"
        state = ("running" if i >= jobs + 20 else "queued" if i >= jobs else
                 "failed" if i % 10 == 9 else "done")
        final = state in ("done", "failed")
        rows.append((name, f"slot/{name}", name, state, int(state != "queued"),
                     "Error: the photo has no face\n" if state == "failed" else "",
                     f"{name}.mp4" if state == "done" else "", now - 60 * (jobs - i),
                     now - 60 * (jobs - i) + 1, now - 60 * (jobs - i) + 30 if final else None))
    with sqlite3.connect(config.paths.state / DB_NAME) as db:
        db.executemany(
            "INSERT INTO jobs (name, payload, outbox, state, attempts, error, video, claimed_at,"
            " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    timing = json.dumps({"quality": {"verdict": "check", "reasons": ["lip sync is weak"],
                                     "notes": [], "headline": "check", "summary": "check"}})
    for i in range(jobs):
        folder = config.paths.outbox / f"job-{i:05d}"
        folder.mkdir()
        (folder / "timing.json").write_text(timing)


def _inbox(config: Config, entries: int) -> RuntimeFile:
    runtime = RuntimeFile(config.paths.state)
    verdicts = [InboxEntry(f"incoming-{i:04d}", config.paths.inbox / f"incoming-{i:04d}",
                           Kind.FOLDER, Verdict.WAITING, "files are still changing")
                for i in range(entries)]
    fault = Fault(FaultKind.WEIGHTS, "the model weights are missing",
                  "run 'facedrop weights fetch'")
    runtime.write([fault], verdicts)
    return runtime


def _serve(config: Config) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(config, Guard(None)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _time(url: str, repeat: int) -> list[float]:
    for _ in range(3):  # warm up: imports, the SQLite page cache
        urllib.request.urlopen(url).read()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with urllib.request.urlopen(url) as response:
            response.read()
        times.append(1000 * (time.perf_counter() - start))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs (10000)")
    parser.add_argument("--inbox", type=int, default=2_000, help="inbox entries (2000)")
    parser.add_argument("--repeat", type=int, default=30, help="requests per URL (30)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facedrop-studio-bench-") as tmp:
        config = _config(Path(tmp))
        started = time.perf_counter()
        _history(config, args.jobs)
        lock = DaemonLock(config.paths.state)
        lock.acquire()  # status reads the runtime file only while a daemon holds the lock
        runtime = _inbox(config, args.inbox)
        print(f"built {args.jobs} finished jobs and {args.inbox} inbox entries in "
              f"{time.perf_counter() - started:.1f} s")
        server, thread, base = _serve(config)
        worst = 0.0
        try:
            for label, path in (("first page", "/api/status"),
                                ("oldest results", "/api/status?before=400"),
                                ("inbox page 9", "/api/status?inbox=450"),
                                ("live HTML", "/live")):
                times = _time(base + path, args.repeat)
                p95 = sorted(times)[max(0, int(0.95 * len(times)) - 1)]
                worst = max(worst, statistics.median(times))
                print(f"{label:<16} GET {path:<26} median {statistics.median(times):6.1f} ms"
                      f"  p95 {p95:6.1f} ms")
        finally:
            server.should_exit = True
            thread.join(5)
            runtime.close()
            lock.release()
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"slowest median {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
