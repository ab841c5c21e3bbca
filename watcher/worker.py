"""Worker: takes one job at a time, runs the pipeline, reports progress, finishes the job.

The pipeline (and its models) is built once and stays resident; everything about one job lives
in that job's ``_Attempt``. An environment fault (``watcher.faults``) never fails a job: the job
goes back to the queue without using up an attempt and the worker pauses. A queue change that
a fault interrupted is kept and repeated when the fault clears (changes are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import Cancelled, FacedropError, InputError
from pipeline.spec import CancelToken, Pipeline
from watcher.cancels import CANCELLED_MESSAGE
from watcher.config import Config
from watcher.execute import execute_job
from watcher.faults import FaultBoard, FaultKind, Places, Scope, classify
from watcher.jobfolder import parse_job_folder
from watcher.jobqueue import Job, JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.outbox import INPUT, ProgressThrottle
from watcher.rates import RateStore
from watcher.transition import Lifecycle, Outcome

log = logging.getLogger("facedrop.worker")

PipelineFactory = Callable[[Config], Pipeline]
Change = tuple[JobState, Outcome]


def retry_delay(base: float, counted: int) -> float:
    """Exponential backoff between a job's attempts: base, 2 base, 4 base..."""
    return base * 2 ** max(0, counted - 1)


class Worker:
    """Runs queued jobs in a thread, one at a time; ``poll`` is called from the daemon loop."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        config: Config,
        factory: PipelineFactory,
        faults: FaultBoard,
        places: Places,
        *,
        clock: Callable[[], float] = time.time,
        crash: CrashHook = no_crash,
    ) -> None:
        self._lifecycle = lifecycle
        self._config = config
        self._factory = factory
        self._faults = faults
        self._places = places
        self._clock = clock
        self._crash = crash
        self._pipeline: Pipeline | None = None
        self._thread: threading.Thread | None = None
        self._current: tuple[int, CancelToken] | None = None
        self._pending: tuple[int, JobState, Outcome] | None = None
        self._lock = threading.Lock()  # finishing vs. shutdown
        self._abandoned: set[int] = set()
        self._by_request: set[int] = set()  # jobs a user cancelled: they end failed, not queued
        self.on_idle: Callable[[], None] = lambda: None

    # ---- the loop's side -----------------------------------------------------------------
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self, stopping: bool) -> bool:
        """Start the next due job if idle; True while a job runs or a change waits."""
        if self.busy():
            return True
        if self._pending is not None:
            if self._faults.blocked(Scope.WORK) or not self._apply(*self._pending):
                return True
        if stopping or self._faults.blocked(Scope.WORK):
            return False
        try:
            job = self._lifecycle.take(self._clock())
        except Exception as err:
            if not self._report(err, FaultKind.STATE):
                raise
            return False
        if job is None:
            return False
        cancel = CancelToken()
        self._current = (job.id, cancel)
        self._thread = threading.Thread(
            target=self._run, args=(job, cancel), name=f"job-{job.id}", daemon=True
        )
        self._thread.start()
        return True

    def waiting(self) -> bool:
        """Are jobs queued (due later, or blocked by a fault)?"""
        return self._pending is not None or bool(
            self._lifecycle.queue.list(JobState.QUEUED, limit=1)
        )

    def cancel(self) -> None:
        current = self._current
        if current is not None:
            current[1].cancel()

    def stop_job(self, job_id: int) -> None:
        """A user's cancel (``watcher.cancels``): stop this job if it runs; it ends failed."""
        current = self._current
        if current is not None and current[0] == job_id:
            self._by_request.add(job_id)
            current[1].cancel()

    def shutdown(self, deadline: float) -> None:
        """Cancel the running job; if it does not stop by ``deadline``, requeue it anyway."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self.cancel()
        thread.join(max(0.0, deadline - time.monotonic()))
        current = self._current
        if not thread.is_alive() or current is None:
            return
        with self._lock:  # the thread cannot be half-way through finishing the job
            self._abandoned.add(current[0])
            try:
                if self._lifecycle.queue.get(current[0]).state is JobState.RUNNING:
                    self._lifecycle.transition(
                        current[0], JobState.QUEUED, Outcome(detail="cancelled", counted=False)
                    )
                    log.warning("job %d did not stop in time; it will be retried", current[0])
            except Exception:  # reconciliation on the next start requeues it
                log.exception("could not requeue job %d", current[0])

    # ---- the job thread ------------------------------------------------------------------
    def _run(self, job: Job, cancel: CancelToken) -> None:
        try:
            to, outcome = self._attempt(job, cancel)
            self._apply(job.id, to, outcome)
        except Exception:  # a bug in the bookkeeping itself: keep the daemon alive
            log.exception("job %d: unexpected error outside the pipeline", job.id)
        finally:
            self._current = None
            self.on_idle()

    def _attempt(self, job: Job, cancel: CancelToken) -> Change:
        outbox = self._lifecycle.outbox
        folder = outbox.folder(job.outbox)
        source = self._lifecycle.payload_path(job)
        progress = _Progress(self._lifecycle, job, self._faults)
        try:
            outbox.begin_attempt(folder)
            parsed = parse_job_folder(source, self._config, job.name)
            if self._pipeline is None:
                self._pipeline = self._factory(self._config)  # models stay loaded between jobs
            result = execute_job(parsed, folder, outbox, self._pipeline, progress, cancel,
                                 rates=RateStore(self._config.paths.state))
        except Cancelled:
            if job.id in self._by_request:
                self._by_request.discard(job.id)
                return JobState.FAILED, Outcome(detail="cancelled by request",
                                                error=CANCELLED_MESSAGE)
            return JobState.QUEUED, Outcome(detail="cancelled", counted=False)
        except Exception as err:
            return self._failure(job, err, source, folder)
        self._faults.resolve(FaultKind.WEIGHTS)
        self._crash("run.video")
        record = result.record
        return JobState.DONE, Outcome(
            video=result.video.name,
            realtime_factor=record.realtime_factor,
            stages=tuple(record.stages),
            total=record.total_seconds,
        )

    def _failure(self, job: Job, err: Exception, source: Path, folder: Path) -> Change:
        fault = classify(err, self._places, FaultKind.OUTBOX)
        if fault is None and not isinstance(err, InputError):
            # A write that failed inside a library (e.g. the encoder on a full disk) may not
            # say so: look at the disks before blaming the job.
            fault = self._faults.check((FaultKind.OUTBOX, FaultKind.STATE))
        if fault is not None:
            self._faults.report(fault)
            log.warning("job %s waits: %s", job.name, fault.reason)
            return JobState.QUEUED, Outcome(detail=f"paused: {fault.reason}", counted=False)
        if not isinstance(err, FacedropError):
            log.error("job %d (%s) attempt %d failed", job.id, job.name, job.attempts,
                      exc_info=err)
        if isinstance(err, InputError):
            return JobState.FAILED, Outcome(error=_message(err, source, folder))
        message = _message(err, source, folder) if isinstance(err, FacedropError) else (
            self._bug_message(err)
        )
        if job.counted >= self._config.daemon.max_attempts:
            return JobState.FAILED, Outcome(error=message)
        delay = retry_delay(self._config.daemon.retry_backoff_seconds, job.counted)
        return JobState.QUEUED, Outcome(
            detail="failed: " + message.splitlines()[0],
            error=message,
            not_before=self._clock() + delay,
        )

    def _bug_message(self, err: Exception) -> str:
        return (
            f"facedrop failed while making this video ({type(err).__name__}: {err}).\n"
            f"This is not a problem with your files. The details are in the log: "
            f"{self._config.paths.logs / 'facedrop.log'}\n"
        )

    def _apply(self, job_id: int, to: JobState, outcome: Outcome) -> bool:
        """Make the change; on an environment fault keep it for later. True when made."""
        with self._lock:
            if job_id in self._abandoned:  # shutdown already requeued it
                return True
            try:
                self._lifecycle.transition(job_id, to, outcome)
            except Exception as err:
                if not self._report(err, FaultKind.OUTBOX):
                    raise
                self._pending = (job_id, to, outcome)
                return False
            self._pending = None
            return True

    def _report(self, err: Exception, default: FaultKind) -> bool:
        fault = classify(err, self._places, default)
        if fault is None:
            return False
        self._faults.report(fault)
        return True


class _Progress:
    """The job's progress callback: queue and status.json, at most a few times a second."""

    def __init__(self, lifecycle: Lifecycle, job: Job, faults: FaultBoard) -> None:
        self._lifecycle, self._job, self._faults = lifecycle, job, faults
        self._throttle = ProgressThrottle()

    def __call__(self, stage: str, fraction: float) -> None:
        self._faults.resolve(FaultKind.WEIGHTS)  # the models loaded: weights are fine
        if not self._throttle.due(stage, fraction):
            return
        try:
            self._lifecycle.progress(self._job, stage, fraction)
        except Exception:  # progress is advisory; a real fault shows at the next write
            log.warning("could not record progress of job %d", self._job.id)


def _message(err: FacedropError, source: Path, folder: Path) -> str:
    """The error's text, naming files where the user will find them (``input/``), not in work/."""
    if err.file and Path(err.file).is_relative_to(source):
        err.file = str(folder / INPUT / Path(err.file).relative_to(source))
    return err.user_message()
