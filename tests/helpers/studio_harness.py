"""``facedrop serve`` in a subprocess for the studio tests, beside ``facedrop watch``."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.daemon_harness import REPO, cli_env, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``facedrop serve --host H --port P``; its output goes to a log file."""

    def __init__(self, config: Path, home: Path, log: Path, *, host: str = "127.0.0.1",
                 **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "serve", "--host", host, "--port",
             str(self.port)],
            cwd=REPO, env=cli_env(config, home, **env), stdout=self._fh, stderr=subprocess.STDOUT,
        )
        wait_for(self._up, 30, f"facedrop serve to answer (log: {self.output()})", poll=0.1)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"facedrop serve exited: {self.output()}")
        try:
            urllib.request.urlopen(self.base + "/static/studio.css", timeout=2).close()
        except (urllib.error.URLError, OSError):
            return False
        return True

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
