"""systemd's notify protocol over real AF_UNIX datagram sockets (a path and an abstract '@'
name), and the daemon's and the fleet worker's main loops driving it: READY after the first
pass, a WATCHDOG ping every pass at least every half watchdog period, none while the loop hangs,
STOPPING on the way out."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon_harness import write_config
from tests.helpers.daemon_pipeline import TestPipeline
from watcher.config import Config, load_config
from watcher.daemon import Daemon
from watcher.sdnotify import ServiceNotifier, socket_address


class Supervisor:
    """The systemd side: a bound datagram socket that collects what facedrop sends."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(name))

    def next(self, timeout: float = 5.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def silent_for(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False

    def drain(self, settle: float = 0.05) -> list[str]:
        """Everything sent so far (waiting ``settle`` seconds for datagrams in flight)."""
        got = []
        self.sock.settimeout(settle)
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
        except TimeoutError:
            return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract() -> Iterator[Supervisor]:
    sup = Supervisor(f"@facedrop-test-{uuid.uuid4().hex}")
    yield sup
    sup.close()


@pytest.fixture
def on_disk() -> Iterator[Supervisor]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    sup = Supervisor(str(folder / "notify"))
    yield sup
    sup.close()
    (folder / "notify").unlink()
    folder.rmdir()


def test_ready_then_watchdog_then_stopping_over_an_abstract_socket(abstract: Supervisor) -> None:
    notifier = ServiceNotifier.from_environ({"NOTIFY_SOCKET": abstract.name,
                                             "WATCHDOG_USEC": "3000000"})
    assert notifier.interval == 1.5  # half of WATCHDOG_USEC, as sd_watchdog_enabled(3) asks
    notifier.alive("watching /in")
    assert abstract.next() == "READY=1\nSTATUS=watching /in"
    notifier.alive("watching /in")
    notifier.alive()
    assert [abstract.next(), abstract.next()] == ["WATCHDOG=1", "WATCHDOG=1"]
    notifier.stopping()
    assert abstract.next() == "STOPPING=1\nSTATUS=stopping"
    notifier.reloading()
    reloading, usec, status = abstract.next().split("\n")
    assert (reloading, status) == ("RELOADING=1", "STATUS=reloading the configuration")
    assert usec.startswith("MONOTONIC_USEC=") and int(usec.split("=")[1]) > 0
    notifier.close()


def test_a_socket_path_and_the_watched_pid(on_disk: Supervisor) -> None:
    env = {"NOTIFY_SOCKET": on_disk.name, "WATCHDOG_USEC": "1000000"}
    mine = ServiceNotifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.interval == 0.5
    other = ServiceNotifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    other.alive()
    other.alive()  # the watchdog is another process's: no ping, and no cap on the loop's wait
    assert on_disk.drain() == ["READY=1"] and other.interval == float("inf")
    no_watchdog = ServiceNotifier.from_environ({"NOTIFY_SOCKET": on_disk.name})
    no_watchdog.alive()
    no_watchdog.alive()
    assert on_disk.drain() == ["READY=1"]
    for n in (mine, other, no_watchdog):
        n.close()


def test_outside_systemd_nothing_is_sent_and_a_lost_socket_is_not_fatal(
        caplog: pytest.LogCaptureFixture) -> None:
    silent = ServiceNotifier.from_environ({})
    silent.alive()
    assert silent.send("READY=1") is False and silent.interval == float("inf")
    gone = ServiceNotifier.from_environ({"NOTIFY_SOCKET": f"@facedrop-gone-{uuid.uuid4().hex}",
                                         "WATCHDOG_USEC": "1000000"})
    with caplog.at_level(logging.WARNING, "facedrop.sdnotify"):
        for _ in range(3):
            gone.alive()
    assert gone.send("WATCHDOG=1") is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1
    gone.close()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    # A long rescan period: only the watchdog's cap keeps the idle loop passing often enough.
    path = write_config(tmp_path / "root", daemon={"rescan_seconds": 30.0,
                                                   "shutdown_timeout": 2.0})
    return load_config(path, home=tmp_path / "home")


def test_a_hung_daemon_loop_stops_its_watchdog_pings(config: Config, abstract: Supervisor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    service = ServiceNotifier(abstract.name, watchdog_seconds=2.0)
    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline), service=service)
    runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    entered, release = threading.Event(), threading.Event()
    runner.start()
    try:
        assert abstract.next(timeout=30) == f"READY=1\nSTATUS=watching {config.paths.inbox}"
        for _ in range(3):  # idle, yet a ping within every watchdog period (30 s rescans)
            assert abstract.next(timeout=2.0) == "WATCHDOG=1"
        assert daemon.intake is not None
        scan = daemon.intake.scan

        def hung_scan() -> int:  # e.g. a stat() on a dead network mount
            entered.set()
            release.wait(30)
            return scan()

        monkeypatch.setattr(daemon.intake, "scan", hung_scan)
        assert entered.wait(2)
        abstract.drain()
        assert abstract.silent_for(3.0)  # 1.5 watchdog periods: systemd would restart it
        monkeypatch.setattr(daemon.intake, "scan", scan)
        release.set()
        assert abstract.next(timeout=2.0) == "WATCHDOG=1"
    finally:
        release.set()
        daemon.request_stop()
        runner.join(10)
        service.close()
    assert not runner.is_alive()
    assert "STOPPING=1\nSTATUS=stopping" in abstract.drain()


def test_a_sighup_reload_says_reloading_never_stopping(config: Config,
                                                       abstract: Supervisor) -> None:
    """systemd takes STOPPING=1 for a stop and kills the service at TimeoutStopSec: a SIGHUP
    reload (the daemon stops cleanly, then starts again in the same process) must not send it."""
    service = ServiceNotifier(abstract.name, watchdog_seconds=2.0)
    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline), service=service)
    runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    runner.start()
    try:
        assert abstract.next(timeout=30).startswith("READY=1")
        daemon.reload_requested = True  # what the SIGHUP handler sets before it stops the loop
        daemon.request_stop()
        runner.join(10)
    finally:
        daemon.request_stop()
        runner.join(10)
        service.close()
    sent = abstract.drain()
    assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in sent), sent
    assert not any(m.startswith("STOPPING=1") for m in sent), sent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_fleet_worker_loop_pings_and_a_hang_in_it_does_not(
        tmp_path: Path, abstract: Supervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's first pass builds the pipeline: while that hangs, systemd hears nothing
    (not even READY); then READY, pings while it waits for its weights (a fresh machine),
    STOPPING on the way out."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.helpers.fleet_harness import fleet_config
    from watcher.fleet.ledger import Ledger
    from watcher.fleet.runner import FleetWorker
    from watcher.storage import open_storage

    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    url = f"redis://127.0.0.1:{_closed_port()}/0"  # no Redis: the card is never published
    path = fleet_config(tmp_path / "root", url, tmp_path / "share")
    cfg = load_config(path, home=tmp_path / "home")
    release = threading.Event()

    class Checked(TestPipeline):  # checks its prerequisites, as the real pipeline does
        def missing_prerequisites(self, needs: object) -> list[object]:
            return []

    def slow_factory(c: Config) -> TestPipeline:  # e.g. a wedged GPU driver
        release.wait(30)
        return Checked(c.pipeline)

    service = ServiceNotifier(abstract.name, watchdog_seconds=2.0)
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))  # fail fast, no retries
    worker = FleetWorker(cfg, slow_factory, Ledger(client, cfg.queue.namespace),
                         open_storage(cfg), service=service)
    runner = threading.Thread(target=worker.serve)
    runner.start()
    try:
        assert abstract.silent_for(1.0)
        release.set()
        # the first pass finds the device (importing torch) and looks for the weights
        assert abstract.next(timeout=30) == f"READY=1\nSTATUS=worker {worker.ident}: " \
                                             "not taking jobs"
        for _ in range(3):  # a ping within every watchdog period
            assert abstract.next(timeout=2.0) == "WATCHDOG=1"
    finally:
        release.set()
        worker.stop()
        runner.join(15)
        service.close()
    assert not runner.is_alive()
    assert "STOPPING=1\nSTATUS=stopping" in abstract.drain()

