"""The job queue: a small protocol the lifecycle uses, whatever stores the jobs.

A queued job is an id, a name, the location of its payload (relative to the work area) and the
name of its outbox folder: no machine-local absolute path, so another backend (Redis) can serve
workers on other machines. The embedded backend is ``watcher.sqlite_queue.SqliteQueue``.

Every state-changing call is idempotent: asking for the state a job is already in changes
nothing and returns the job. A change the table ``ALLOWED`` does not list is a bug
(``TransitionError``).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class JobState(StrEnum):
    """Where a claimed job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINAL = frozenset({JobState.DONE, JobState.FAILED})

ALLOWED: dict[JobState, frozenset[JobState]] = {
    # QUEUED -> FAILED: given up before a run (it kept stopping the daemon).
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED}),
    # RUNNING -> QUEUED: cancelled by shutdown, paused by an environment fault, crashed or
    # failed with attempts left.
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.QUEUED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
}


class TransitionError(RuntimeError):
    """A state change the transition table does not allow (a bug, not a user error)."""


def check_transition(job_id: int, old: JobState, new: JobState) -> None:
    """Raise ``TransitionError`` unless ``old -> new`` is allowed."""
    if new not in ALLOWED[old]:
        raise TransitionError(f"job {job_id}: {old.value} -> {new.value} is not allowed")


@dataclass(frozen=True, slots=True)
class Job:
    """One job as the queue stores it."""

    id: int
    name: str
    payload: str  # the job folder, relative to the work area: "<slot>/<name>"
    outbox: str  # the job's folder name in the outbox
    state: JobState
    attempts: int  # runs started
    counted: int  # runs that count toward max_attempts (not cancelled, not paused)
    stage: str
    progress: float
    error: str  # the whole error.txt text of a failed job
    video: str  # the video's file name of a done job
    realtime_factor: float | None
    claimed_at: float
    started_at: float | None
    finished_at: float | None
    not_before: float  # a retried job waits until this wall-clock time


class JobQueue(Protocol):
    """What Intake, the executors and reconciliation need from a queue backend."""

    def enqueue(self, name: str, payload: str, outbox: str) -> Job:
        """Record a newly claimed job as queued."""
        ...

    def take(self, now: float) -> Job | None:
        """Atomically move the oldest due queued job to running (attempt counted), or None."""
        ...

    def start(self, job_id: int, attempt: int, detail: str) -> Job:
        """A fleet worker runs the job as ``attempt`` (its own number): queued -> running, or a
        running job's attempt moved on (redelivered to another machine); idempotent."""
        ...

    def heartbeat(self, job_id: int, stage: str, progress: float) -> None:
        """Record the running job's stage and progress."""
        ...

    def done(self, job_id: int, *, video: str, realtime_factor: float) -> Job:
        """running -> done."""
        ...

    def fail(self, job_id: int, error: str) -> Job:
        """queued/running -> failed, with the error.txt text."""
        ...

    def retry(self, job_id: int, detail: str, *, not_before: float = 0.0,
              counted: bool = True) -> Job:
        """running -> queued; ``counted=False`` gives the attempt back (shutdown, fault)."""
        ...

    def list(self, *states: JobState, limit: int | None = 1000, newest_first: bool = False,
             before: int | None = None) -> list[Job]:
        """Jobs in any of ``states`` (all if none), oldest first unless told otherwise, at most
        ``limit`` (None: every one); with ``before``, only ids below it (the next page of the
        history, without counting it)."""
        ...

    def get(self, job_id: int) -> Job:
        """One job by id."""
        ...

    def history(self, job_id: int) -> builtins.list[tuple[int, str, str, str]]:
        """(attempt, from, to, detail) of one job, in order."""
        ...

    def close(self) -> None:
        """Release the backend."""
        ...
