"""macOS notifications for finished and failed jobs, through ``osascript``.

A notification is a courtesy: it never blocks the daemon (osascript runs as a child process that
is reaped later, and killed after a timeout) and never fails a job (every error is caught; the
first one is logged as ONE warning and later ones stay quiet).

The daemon takes any ``Notifier``: ``notifier(title, body)``. Build it with
``make_notifier(config.daemon.notify)``; on other systems, or when switched off, it does nothing.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger("facedrop.notify")


class Notifier(Protocol):
    """Shows one notification; must return at once and never raise."""

    def __call__(self, title: str, body: str) -> None: ...


def applescript_quote(text: str) -> str:
    """``text`` as an AppleScript string literal (backslashes and quotes escaped, one line)."""
    one_line = " ".join(text.splitlines())
    return '"' + one_line.replace("\\", "\\\\").replace('"', '\\"') + '"'


def notification_script(title: str, body: str) -> str:
    """The AppleScript that shows ``body`` under ``title``."""
    return f"display notification {applescript_quote(body)} with title {applescript_quote(title)}"


def job_notification(job: str, *, video: Path | None = None, error: str = "",
                     quality: str = "", motion: str = "") -> tuple[str, str]:
    """(title, body) for a job: where the video is, or the first line of the error.

    ``quality`` is the quality report's headline: ``check lip sync`` makes the body
    ``Done — check lip sync: <video>``; ``ok`` or nothing leaves it ``Done: <video>``.
    ``motion`` is the motion source used (``still``): ``Done (still motion): <video>``.
    """
    if error:
        first = next((line.strip() for line in error.splitlines() if line.strip()), "failed")
        return job, f"Failed: {first}"
    done = "Done" + (f" ({motion} motion)" if motion else "")
    done = f"{done} — {quality}" if quality and quality != "ok" else done
    return job, f"{done}: {video}" if video is not None else done


class OsascriptNotifier:
    """Runs ``osascript -e 'display notification ...'`` without waiting for it."""

    def __init__(self, osascript: str = "osascript", *, timeout: float = 10.0,
                 popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._osascript = osascript
        self._timeout = timeout
        self._popen = popen
        self._clock = clock
        self._pending: list[tuple[subprocess.Popen[bytes], float]] = []
        self._warned = False

    def __call__(self, title: str, body: str) -> None:
        """Start the notification and return at once; never raises."""
        try:
            self._reap()
            proc = self._popen([self._osascript, "-e", notification_script(title, body)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
            self._pending.append((proc, self._clock()))
        except Exception as err:  # a notification must never fail a job
            self._warn_once(f"{type(err).__name__}: {err}")

    def _warn_once(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("notifications are not working (%s); jobs are unaffected, "
                        "and this warning is not repeated", why)

    def _reap(self) -> None:
        """Collect finished children; kill those running longer than the timeout."""
        still = []
        for proc, started in self._pending:
            code = proc.poll()
            if code is None and self._clock() - started > self._timeout:
                proc.kill()
                proc.wait()
                self._warn_once(f"osascript did not finish within {self._timeout:g} s")
            elif code is None:
                still.append((proc, started))
            elif code != 0:
                self._warn_once(f"osascript exited with status {code}")
        self._pending = still

    def close(self, timeout: float = 2.0) -> None:
        """Wait briefly for running notifications, then kill what is left (daemon shutdown)."""
        for proc, _ in self._pending:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()


class NullNotifier:
    """Does nothing: notifications switched off, or not on macOS."""

    def __call__(self, title: str, body: str) -> None:
        """Ignore the notification."""

    def close(self, timeout: float = 2.0) -> None:
        """Nothing to wait for."""


def make_notifier(enabled: bool, *, system: str | None = None,
                  osascript: str = "osascript") -> OsascriptNotifier | NullNotifier:
    """The notifier for ``daemon.notify``: osascript on macOS, a no-op otherwise."""
    if not enabled or (system or sys.platform) != "darwin":
        return NullNotifier()
    return OsascriptNotifier(osascript)
