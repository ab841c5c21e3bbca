"""The ``Executor`` seam: what the daemon's loop asks of whatever runs its queued jobs.

Two implementations, chosen once by ``queue.backend`` (``Daemon._executor``): the local
``watcher.worker.Worker`` runs each job here, in the supervised worker child; the fleet's
``watcher.fleet.dispatcher.Dispatcher`` sends jobs to ``facedrop worker`` machines and
collects their results. The loop sees only this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Executor(Protocol):
    """Runs (or has run) the queue's jobs; every method is called from the daemon's loop."""

    on_idle: Callable[[], None]  # set by the daemon: wakes its loop when a job ends

    def poll(self, stopping: bool) -> bool:
        """Start or advance work (none new while ``stopping``); True while jobs are in hand."""
        ...

    def waiting(self) -> bool:
        """Are jobs queued that have not run yet (due later, or held by a fault)?"""
        ...

    def stop_job(self, job_id: int) -> None:
        """A user's cancel of a running job (``watcher.cancels``): it ends failed."""
        ...

    def cancel(self) -> None:
        """Shutdown begins: stop the running work at its next chunk boundary, uncounted."""
        ...

    def shutdown(self, deadline: float) -> None:
        """Release everything by ``deadline`` (monotonic seconds)."""
        ...
