"""A real ``redis-server`` on a free loopback port, with its own folder and AOF on.

``redis_server_binary`` finds it (Debian: ``apt-get install redis-server``; macOS:
``brew install redis``); tests skip with that reason only where there is none.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

NO_REDIS = ("no redis-server on PATH (Debian/Ubuntu: apt-get install redis-server; macOS: "
            "brew install redis)")


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``start``/``stop``/``restart`` keep the port and the data folder (the AOF)."""

    def __init__(self, root: Path, binary: str, *, appendfsync: str = "always") -> None:
        self.root = root
        self.appendfsync = appendfsync  # tests: always (nothing lost on a restart)
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.root), "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
             "--protected-mode", "yes", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start: "
                                       + (self.root / "redis.log").read_text()[-2000:]) from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)
