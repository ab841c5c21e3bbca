"""The one transition function: a job's state change in the queue, the log and ``status.json``.

Every change goes: queue first (the truth, idempotent), then the outbox (completed for a
finished job: error.txt, input/, then status.json last), then one log line. Repeating a
transition after a kill or an environment fault at any step finishes the same work and changes
nothing else, which is what reconciliation and the worker's retry rely on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.spec import StageTiming
from watcher.jobqueue import FINAL, Job, JobQueue, JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.logs import log_job_state
from watcher.macos.notify import job_notification
from watcher.outbox import INPUT, Outbox, read_motion, read_quality, remove_partials

log = logging.getLogger("facedrop.lifecycle")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change records beyond the state."""

    detail: str = ""
    error: str = ""  # failed: the error.txt text; queued: why it is retried
    video: str = ""
    realtime_factor: float = 0.0
    not_before: float = 0.0
    counted: bool = True
    stages: tuple[StageTiming, ...] = ()
    total: float | None = None


class Lifecycle:
    """Moves jobs between states; the only code that writes the queue or ``status.json``."""

    def __init__(
        self,
        queue: JobQueue,
        outbox: Outbox,
        work_dir: Path,
        *,
        crash: CrashHook = no_crash,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.queue = queue
        self.outbox = outbox
        self.work_dir = work_dir
        self._crash = crash
        self._notify = notify

    def payload_path(self, job: Job) -> Path:
        return self.work_dir / job.payload

    # ---- entries -------------------------------------------------------------------------
    def enqueue(self, name: str, payload: str, outbox_name: str) -> Job:
        """A claimed job enters the queue."""
        job = self.queue.enqueue(name, payload, outbox_name)
        self._crash("claim.enqueued")
        return self._publish(job)

    def take(self, now: float) -> Job | None:
        """Start the oldest due job (attempt counted in the same queue change)."""
        job = self.queue.take(now)
        if job is None:
            return None
        self._crash("run.started")
        return self._publish(job)

    def started(self, job_id: int, attempt: int, detail: str) -> Job:
        """A fleet worker runs the job as ``attempt`` (``JobQueue.start``). ``status.json``
        follows with the worker's progress (``progress``) or its result (``transition``)."""
        return self.queue.start(job_id, attempt, detail)

    def progress(self, job: Job, stage: str, fraction: float) -> None:
        """Not a transition: the running job's stage and progress, in the queue and status."""
        self.queue.heartbeat(job.id, stage, fraction)
        self.outbox.write_status(
            self.outbox.folder(job.outbox), JobState.RUNNING.value, job=job.name, stage=stage,
            progress=round(fraction, 4), attempt=job.attempts,
        )

    # ---- the transition function ---------------------------------------------------------
    def transition(self, job_id: int, to: JobState, outcome: Outcome = Outcome()) -> Job:
        """Move job ``job_id`` to ``to`` (queued, done or failed): queue, outbox, log."""
        if to is JobState.DONE:
            job = self.queue.done(job_id, video=outcome.video,
                                  realtime_factor=outcome.realtime_factor)
        elif to is JobState.FAILED:
            job = self.queue.fail(job_id, outcome.error)
        elif to is JobState.QUEUED:
            job = self.queue.retry(job_id, outcome.detail, not_before=outcome.not_before,
                                   counted=outcome.counted)
        else:
            raise ValueError(f"use take() to start a job, not transition(..., {to})")
        if to in FINAL:
            self._crash("finish.recorded")
        return self._publish(job, outcome)

    def settle(self, job: Job) -> Job:
        """Bring the outbox in line with the queue's record (reconciliation); idempotent.

        A finished job whose outbox folder the user has since removed is left alone.
        """
        folder = self.outbox.folder(job.outbox)
        if job.state in FINAL:
            unfinished = self.payload_path(job).exists() or (
                folder.exists() and not self.outbox.agrees(job)
            )
            if unfinished:
                self._publish(job, log_line=False)
        elif not self.outbox.agrees(job):
            self._publish(job, log_line=False)
        return job

    # ---- internals -----------------------------------------------------------------------
    def _publish(self, job: Job, outcome: Outcome = Outcome(), *, log_line: bool = True) -> Job:
        folder = self.outbox.folder(job.outbox)
        if job.state in FINAL:
            self._complete(job, folder)
        elif job.state is JobState.QUEUED:
            folder.mkdir(parents=True, exist_ok=True)
            remove_partials(folder)
        self.outbox.publish(job)
        if job.state in FINAL:
            self._crash("finish.published")
        if log_line:
            log_job_state(
                job.name, job.state.value, attempt=job.attempts,
                error=job.error if job.state is JobState.FAILED else outcome.error,
                stages=outcome.stages, total=outcome.total,
            )
            if job.state in FINAL:
                self._notify_final(job, folder)
        return job

    def _complete(self, job: Job, folder: Path) -> None:
        """error.txt, input/ (status.json follows): the outbox of a finished job."""
        folder.mkdir(parents=True, exist_ok=True)
        remove_partials(folder)
        if job.state is JobState.FAILED:
            self.outbox.write_error(folder, job.error)
            self._crash("finish.error")
        payload = self.payload_path(job)
        if payload.exists() or not (folder / INPUT).exists():
            self.outbox.deliver_inputs(folder, payload)

    def _notify_final(self, job: Job, folder: Path) -> None:
        if self._notify is None:
            return
        video = folder / job.video if job.state is JobState.DONE else None
        error = job.error if job.state is JobState.FAILED else ""
        quality = read_quality(folder) if job.state is JobState.DONE else None
        headline = str(quality.get("headline", "")) if quality else ""
        motion = read_motion(folder) if job.state is JobState.DONE else None
        used = str(motion.get("source", "")) if motion else ""
        try:
            self._notify(*job_notification(job.name, video=video, error=error, quality=headline,
                                           motion=used))
        except Exception:  # a notification is a courtesy; never let it break the daemon
            log.exception("notification failed")
