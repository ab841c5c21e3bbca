"""One log line when Redis goes away, one when it is back: never a traceback per retry.

During a Redis outage every part of a worker meets it: Dramatiq's consumer thread (which logs a
CRITICAL line, with a traceback for a timeout, once a second), the heartbeat, the job handler.
``Outage`` is the one place that says so: ``down`` logs the first failure of an outage,
``up`` logs its end and how long it lasted. ``BrokerNoise`` is a logging filter that turns
Dramatiq's connection-error records into ``down`` calls instead of log lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from watcher.fleet.broker import BROKER_ERRORS

log = logging.getLogger("facedrop.fleet.worker")

# What Dramatiq logs when it cannot talk to Redis (worker.py: the consumer thread, post-process).
_NOISE = ("Consumer encountered", "Failed to post_process_message", "Restarting consumer")
_REDIS_ERRORS = (*BROKER_ERRORS, ConnectionError, TimeoutError)


class Outage:
    """Thread-safe outage state; logs only at its edges."""

    def __init__(self, where: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._where = where
        self._clock = clock
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._since is not None

    def down(self, err: object) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = self._clock()
        log.warning("Redis at %s cannot be reached (%s); waiting for it (jobs are not lost)",
                    self._where, _first_line(err))

    def up(self) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            log.warning("Redis at %s is back after %.0f s", self._where, self._clock() - since)


class BrokerNoise(logging.Filter):
    """Drops Dramatiq's records about a lost Redis connection, reporting them to ``outage``."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self._outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("dramatiq"):
            return True
        text = str(record.msg)
        err = record.exc_info[1] if record.exc_info else None
        if text.startswith(_NOISE) and (err is None or isinstance(err, _REDIS_ERRORS)):
            self._outage.down(err or record.getMessage())
            return False
        return True


def _first_line(err: object) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
