"""The embedded job queue: SQLite (WAL) in the state folder, never in a synced folder.

``SqliteQueue`` implements ``watcher.jobqueue.JobQueue``. Each change updates the job row and
appends an ``attempts`` row in one transaction; ``take`` increments the attempt counter in the
transaction that starts the run, so the count is on disk before any pipeline work starts.
In a fleet this is the intake's record: a job stays QUEUED while it waits in Redis and
becomes RUNNING (``start``) when a worker reports its first progress, with that worker's
attempt number (a job redelivered after a worker died runs as attempt 2 on another machine:
the record follows, with a history row).
SQLite's own errors (``sqlite3.OperationalError: database or disk is full``) are not
``OSError``: the caller classifies them (``watcher.faults``).
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from watcher.jobqueue import Job, JobState, check_transition

DB_NAME = "facedrop.db"
VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    payload TEXT NOT NULL UNIQUE,
    outbox TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    counted INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    video TEXT NOT NULL DEFAULT '',
    realtime_factor REAL,
    claimed_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    not_before REAL NOT NULL DEFAULT 0
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

# Version 1 kept absolute work_dir/outbox_dir paths; they become relative names.
MIGRATE_V1 = """
ALTER TABLE jobs RENAME TO jobs_v1;
{schema}
INSERT INTO jobs (id, name, payload, outbox, state, attempts, counted, stage, progress, error,
                  claimed_at, started_at, finished_at)
    SELECT id, name, work_dir, outbox_dir, state, attempts, attempts, stage, progress, error,
           claimed_at, started_at, finished_at FROM jobs_v1;
DROP TABLE jobs_v1;
"""


def _job(r: sqlite3.Row) -> Job:
    return Job(
        id=r["id"],
        name=r["name"],
        payload=r["payload"],
        outbox=r["outbox"],
        state=JobState(r["state"]),
        attempts=r["attempts"],
        counted=r["counted"],
        stage=r["stage"],
        progress=r["progress"],
        error=r["error"],
        video=r["video"],
        realtime_factor=r["realtime_factor"],
        claimed_at=r["claimed_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        not_before=r["not_before"],
    )


class SqliteQueue:
    """Thread-safe access to the state database (one connection, one lock)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = state_dir / DB_NAME
        self._clock = clock
        if readonly:
            self._conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # survive power loss, not just crashes
            self._create()
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def _create(self) -> None:
        columns = [r[1] for r in self._conn.execute("PRAGMA table_info(jobs)")]
        if "work_dir" in columns:
            self._migrate_v1()
        else:
            self._conn.executescript(SCHEMA)
        if self._conn.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            self._conn.execute(f"PRAGMA user_version={VERSION}")

    def _migrate_v1(self) -> None:
        self._conn.executescript("BEGIN;" + MIGRATE_V1.format(schema=SCHEMA) + "COMMIT;")
        rows = self._conn.execute("SELECT id, payload, outbox FROM jobs").fetchall()
        with self._conn:
            for job_id, work_dir, outbox_dir in rows:
                parts = PurePosixPath(work_dir).parts
                self._conn.execute(
                    "UPDATE jobs SET payload=?, outbox=? WHERE id=?",
                    ("/".join(parts[-2:]), PurePosixPath(outbox_dir).name, job_id),
                )

    def close(self) -> None:
        self._conn.close()

    # ---- JobQueue ----------------------------------------------------------------------------
    def enqueue(self, name: str, payload: str, outbox: str) -> Job:
        now = self._clock()
        with self._lock, self._conn:
            old = self._conn.execute("SELECT id FROM jobs WHERE payload=?", (payload,)).fetchone()
            if old is not None:  # idempotent: the same payload is one job
                job_id = int(old[0])
            else:
                cur = self._conn.execute(
                    "INSERT INTO jobs (name, payload, outbox, state, claimed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, payload, outbox, JobState.QUEUED.value, now),
                )
                job_id = int(cur.lastrowid or 0)
                self._log(job_id, 0, "", JobState.QUEUED, now, "claimed")
        return self.get(job_id)

    def take(self, now: float) -> Job | None:
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT id, attempts FROM jobs WHERE state=? AND not_before<=? ORDER BY id "
                "LIMIT 1",
                (JobState.QUEUED.value, now),
            ).fetchone()
            if row is None:
                return None
            attempt = row["attempts"] + 1
            self._conn.execute(
                "UPDATE jobs SET state=?, attempts=?, counted=counted+1, started_at=?, "
                "finished_at=NULL, stage='', progress=0, error='' WHERE id=?",
                (JobState.RUNNING.value, attempt, self._clock(), row["id"]),
            )
            self._log(row["id"], attempt, JobState.QUEUED.value, JobState.RUNNING,
                      self._clock(), "started")
        return self.get(row["id"])

    def start(self, job_id: int, attempt: int, detail: str) -> Job:
        now = self._clock()
        with self._lock, self._conn:
            row = self._conn.execute("SELECT state, attempts FROM jobs WHERE id=?",
                                     (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            state = JobState(row["state"])
            if state is JobState.QUEUED:
                self._conn.execute(
                    "UPDATE jobs SET state=?, attempts=?, counted=counted+1, started_at=?, "
                    "finished_at=NULL, stage='', progress=0, error='' WHERE id=?",
                    (JobState.RUNNING.value, attempt, now, job_id),
                )
                self._log(job_id, attempt, state.value, JobState.RUNNING, now, detail)
            elif state is JobState.RUNNING and row["attempts"] != attempt:
                self._conn.execute("UPDATE jobs SET attempts=?, started_at=? WHERE id=?",
                                   (attempt, now, job_id))
                self._log(job_id, attempt, state.value, JobState.RUNNING, now, detail)
        return self.get(job_id)

    def heartbeat(self, job_id: int, stage: str, progress: float) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE jobs SET stage=?, progress=? WHERE id=? AND state=?",
                (stage, progress, job_id, JobState.RUNNING.value),
            )

    def done(self, job_id: int, *, video: str, realtime_factor: float) -> Job:
        return self._change(
            job_id, JobState.DONE, "finished",
            "video=?, realtime_factor=?, progress=1, stage='', finished_at=?",
            (video, realtime_factor, self._clock()),
        )

    def fail(self, job_id: int, error: str) -> Job:
        return self._change(
            job_id, JobState.FAILED, "finished", "error=?, stage='', finished_at=?",
            (error, self._clock()),
        )

    def retry(self, job_id: int, detail: str, *, not_before: float = 0.0,
              counted: bool = True) -> Job:
        back = 0 if counted else 1
        return self._change(
            job_id, JobState.QUEUED, detail,
            "not_before=?, counted=counted-?, stage='', progress=0",
            (not_before, back),
        )

    def list(self, *states: JobState, limit: int | None = 1000, newest_first: bool = False,
             before: int | None = None) -> list[Job]:
        terms: list[str] = []
        params: list[str | int] = [s.value for s in states]
        if states:
            # Newest first walks the ids backwards and stops after ``limit`` rows; the state
            # index (``+state`` keeps SQLite off it) would sort every matching job first.
            column = "+state" if newest_first else "state"
            terms.append(f"{column} IN ({','.join('?' * len(states))})")
        if before is not None:
            terms.append("id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(terms)}" if terms else ""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY id {order} LIMIT ?",
                (*params, -1 if limit is None else limit),  # SQLite: a negative LIMIT is none
            ).fetchall()
        return [_job(r) for r in rows]

    def get(self, job_id: int) -> Job:
        with self._lock:
            r = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None:
            raise KeyError(job_id)
        return _job(r)

    def history(self, job_id: int) -> builtins.list[tuple[int, str, str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT attempt, from_state, to_state, detail FROM attempts WHERE job_id = ? "
                "ORDER BY id",
                (job_id,),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # ---- internals ---------------------------------------------------------------------------
    def _change(self, job_id: int, to: JobState, detail: str, sets: str,
                values: tuple[object, ...]) -> Job:
        """One checked, idempotent state change: nothing happens if the job is already ``to``."""
        with self._lock, self._conn:
            cur = self._conn.execute(
                "SELECT state, attempts FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            if cur is None:
                raise KeyError(job_id)
            old = JobState(cur["state"])
            if old is not to:
                check_transition(job_id, old, to)
                self._conn.execute(
                    f"UPDATE jobs SET state=?, {sets} WHERE id=?", (to.value, *values, job_id)
                )
                self._log(job_id, cur["attempts"], old.value, to, self._clock(), detail)
        return self.get(job_id)

    def _log(self, job_id: int, attempt: int, old: str, new: JobState, at: float,
             detail: str) -> None:
        self._conn.execute(
            "INSERT INTO attempts (job_id, attempt, from_state, to_state, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, attempt, old, new.value, at, detail),
        )

