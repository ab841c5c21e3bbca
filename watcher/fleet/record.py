"""The intake's record of fleet jobs: the embedded ``SqliteQueue`` plus one fleet-only change.

In a fleet a job stays QUEUED locally while it waits in Redis; it becomes RUNNING when a worker
reports its first progress, with that worker's attempt number (a job redelivered after a worker
died runs as attempt 2 on another machine: the record follows, with a history row).
"""

from __future__ import annotations

from watcher.jobqueue import Job, JobState
from watcher.state import SqliteQueue


class FleetRecord(SqliteQueue):
    """``SqliteQueue`` with ``started``: a named job started (or restarted) by a worker."""

    def started(self, job_id: int, attempt: int, detail: str) -> Job:
        """QUEUED -> RUNNING as ``attempt``, or a RUNNING job's attempt moved on; idempotent."""
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
