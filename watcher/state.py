"""The daemon's durable state: SQLite (WAL) in the state folder, never in a synced folder.

A job's status is a closed ``JobState`` with an explicit transition table. Every change goes
through ``StateDB.transition``, which updates the job row and appends an ``attempts`` row in one
transaction; starting a run increments the attempt counter in that same transaction, so the
count is on disk before any pipeline work starts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

DB_NAME = "facedrop.db"


class JobState(StrEnum):
    """Where a claimed job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED}),
    # RUNNING -> QUEUED: cancelled by shutdown, or crashed / failed with attempts left.
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.QUEUED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    work_dir TEXT NOT NULL UNIQUE,
    outbox_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    claimed_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
"""


class TransitionError(RuntimeError):
    """A state change the transition table does not allow (a bug, not a user error)."""


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as stored."""

    id: int
    name: str
    work_dir: Path
    outbox_dir: Path
    state: JobState
    attempts: int
    stage: str
    progress: float
    error: str
    claimed_at: float
    started_at: float | None
    finished_at: float | None


def _row(r: sqlite3.Row) -> JobRow:
    return JobRow(
        r["id"],
        r["name"],
        Path(r["work_dir"]),
        Path(r["outbox_dir"]),
        JobState(r["state"]),
        r["attempts"],
        r["stage"],
        r["progress"],
        r["error"],
        r["claimed_at"],
        r["started_at"],
        r["finished_at"],
    )


class StateDB:
    """Thread-safe access to the state database (one connection, one lock)."""

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = state_dir / DB_NAME
        if readonly:
            self._conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # survive power loss, not just crashes
            self._conn.executescript(SCHEMA)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def add_job(self, name: str, work_dir: Path, outbox_dir: Path) -> JobRow:
        """Record a newly claimed job as queued."""
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO jobs (name, work_dir, outbox_dir, state, claimed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, str(work_dir), str(outbox_dir), JobState.QUEUED.value, time.time()),
            )
            self._conn.execute(
                "INSERT INTO attempts (job_id, attempt, from_state, to_state, at, detail) "
                "VALUES (?, 0, '', ?, ?, 'claimed')",
                (cur.lastrowid, JobState.QUEUED.value, time.time()),
            )
        return self.get(int(cur.lastrowid))

    def transition(self, job_id: int, to: JobState, detail: str = "", error: str = "") -> JobRow:
        """Move a job to ``to`` (checked against ``ALLOWED``) and log it, in one transaction.

        Entering RUNNING increments the attempt counter; leaving RUNNING records finish time.
        """
        now = time.time()
        with self._lock, self._conn:
            cur = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            old = JobState(cur["state"])
            if to not in ALLOWED[old]:
                raise TransitionError(f"job {job_id}: {old.value} -> {to.value} is not allowed")
            attempts = cur["attempts"] + (1 if to is JobState.RUNNING else 0)
            started = now if to is JobState.RUNNING else cur["started_at"]
            finished = now if to in (JobState.DONE, JobState.FAILED) else cur["finished_at"]
            self._conn.execute(
                "UPDATE jobs SET state=?, attempts=?, started_at=?, finished_at=?, error=?, "
                "stage='', progress=? WHERE id=?",
                (
                    to.value,
                    attempts,
                    started,
                    finished,
                    error,
                    1.0 if to is JobState.DONE else 0,
                    job_id,
                ),
            )
            self._conn.execute(
                "INSERT INTO attempts (job_id, attempt, from_state, to_state, at, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, attempts, old.value, to.value, now, detail),
            )
        return self.get(job_id)

    def set_progress(self, job_id: int, stage: str, progress: float) -> None:
        """Record the running job's stage and progress (no transition)."""
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE jobs SET stage=?, progress=? WHERE id=? AND state=?",
                (stage, progress, job_id, JobState.RUNNING.value),
            )

    def get(self, job_id: int) -> JobRow:
        with self._lock:
            r = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(r)

    def jobs(
        self, *states: JobState, limit: int = 1000, newest_first: bool = False
    ) -> list[JobRow]:
        """Jobs in any of ``states`` (all if none), oldest claim first unless told otherwise."""
        where = f"WHERE state IN ({','.join('?' * len(states))})" if states else ""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY id {order} LIMIT ?",
                (*[s.value for s in states], limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def known_work_dirs(self) -> set[Path]:
        with self._lock:
            rows = self._conn.execute("SELECT work_dir FROM jobs").fetchall()
        return {Path(r[0]) for r in rows}

    def counted_attempts(self, job_id: int) -> int:
        """Attempts that count toward ``max_attempts``: runs not ended by a shutdown cancel."""
        with self._lock:
            started, cancelled = self._conn.execute(
                "SELECT SUM(to_state = 'running'), SUM(detail = 'cancelled') "
                "FROM attempts WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return int(started or 0) - int(cancelled or 0)

    def history(self, job_id: int) -> list[tuple[int, str, str, str]]:
        """(attempt, from, to, detail) rows of one job, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT attempt, from_state, to_state, detail FROM attempts WHERE job_id = ? "
                "ORDER BY id",
                (job_id,),
            ).fetchall()
        return [tuple(r) for r in rows]
