"""A fleet in subprocesses for the tests: config, ``facedrop worker`` processes, job folders.

Every worker is a real ``python -m watcher.cli worker`` with the stand-in pipeline
(``tests.helpers.daemon_pipeline``); all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.daemon_harness import REPO, cli_env, facedrop, write_config

# Short heartbeats so a killed worker's job is redelivered within seconds, and a look for
# dead workers on every queue command (production: 30 s and 10 %).
TEST_QUEUE = {"heartbeat_timeout_seconds": 3.0, "maintenance_chance": 1_000_000}


def fleet_config(root: Path, redis_url: str, storage: Path, **sections: dict[str, Any]) -> Path:
    """``write_config`` plus queue.backend redis and a storage folder under ``root``."""
    storage.mkdir(parents=True, exist_ok=True)
    queue = {"backend": "redis", "url": redis_url, **TEST_QUEUE, **sections.pop("queue", {})}
    return write_config(root, queue=queue,
                        storage={"backend": "folder", "path": str(storage)}, **sections)


class WorkerProcess:
    """``facedrop worker`` in a subprocess; output goes to a log file."""

    def __init__(self, config: Path, home: Path, log: Path, *args: str, **env: str) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "worker", *args],
            cwd=REPO, env=cli_env(config, home, **env),
            stdout=self._fh, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def status_json(config: Path, home: Path) -> dict[str, Any]:
    done = facedrop(config, home, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def stop_all(*procs: Any) -> None:
    for proc in procs:
        proc.stop()
