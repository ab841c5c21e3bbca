"""systemd's notify protocol: READY, WATCHDOG and STOPPING datagrams to ``$NOTIFY_SOCKET``.

Under a ``Type=notify`` unit systemd counts the service as started only after ``READY=1``, and
with ``WatchdogSec=`` it kills and restarts the service when no ``WATCHDOG=1`` arrives in time.
The daemon's and the fleet worker's main loops call ``alive()`` once per pass, never a thread of
its own: a loop that hangs stops pinging, which is the hang the watchdog is there to catch.

The protocol (sd_notify(3)): one datagram per message, newline-separated ``KEY=VALUE`` lines, to
the AF_UNIX socket named in ``$NOTIFY_SOCKET``; a name starting with ``@`` lies in the abstract
namespace (the ``@`` stands for a leading NUL byte). ``$WATCHDOG_USEC`` is the timeout, and
sd_watchdog_enabled(3) asks for a ping every half of it; ``$WATCHDOG_PID``, when set, names the
one process it watches. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("facedrop.sdnotify")

SocketFactory = Callable[[], socket.socket]


def _datagram_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


def socket_address(name: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as a ``connect``/``sendto`` address: ``@name`` is abstract (NUL)."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class ServiceNotifier:
    """Tells systemd the service is ready, alive, or stopping; silent when not under systemd.

    A failed send (systemd restarted, the socket gone) is logged once and never raised: the
    daemon must not stop working because its supervisor cannot hear it.
    """

    def __init__(self, address: str | None = None, *, watchdog_seconds: float | None = None,
                 make_socket: SocketFactory = _datagram_socket) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds
        self._make_socket = make_socket
        self._sock: socket.socket | None = None
        self._ready = False
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *,
                     pid: int | None = None) -> ServiceNotifier:
        """The notifier systemd asked for in this process's environment (none: silent)."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        watched_pid = env.get("WATCHDOG_PID", "")
        mine = not watched_pid or watched_pid == str(os.getpid() if pid is None else pid)
        if usec.isdigit() and int(usec) > 0 and mine:
            watchdog = int(usec) / 1e6
        return cls(address, watchdog_seconds=watchdog)

    @property
    def interval(self) -> float:
        """The longest a loop may wait between two passes: half the watchdog (inf: none)."""
        return self.watchdog_seconds / 2 if self.watchdog_seconds else math.inf

    def alive(self, status: str = "") -> None:
        """Once per main-loop pass: the first says READY=1, every later one WATCHDOG=1."""
        if not self._ready:
            self._ready = True
            self.send("READY=1", f"STATUS={status}" if status else "")
        elif self.watchdog_seconds:
            self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        """Shutdown has begun (systemd then waits up to TimeoutStopSec=)."""
        self.send("STOPPING=1", f"STATUS={status}")

    def reloading(self, status: str = "reloading the configuration") -> None:
        """A SIGHUP reload has begun; the next process pass's READY=1 ends it. Never STOPPING
        here: systemd would take the reload for a stop and kill the service at its timeout."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def send(self, *lines: str) -> bool:
        """One datagram of ``lines``; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(line for line in lines if line).encode()
        try:
            if self._sock is None:
                self._sock = self._make_socket()
            self._sock.sendto(message, socket_address(self.address))
        except OSError as err:
            if not self._failed:
                log.warning("cannot notify systemd at %s (%s)", self.address, err)
                self._failed = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
