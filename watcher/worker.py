"""Worker: takes one job at a time, runs the pipeline, reports progress, finishes the job.

Each job is one ``watcher.attempt.attempt``: probing and the pipeline run in the supervised
worker child (``watcher.supervisor``), where the models stay resident between jobs; this class
only acts on the attempt's verdict. An environment fault (``watcher.faults``) never fails a job:
the job goes back to the queue without using up an attempt and the worker pauses. A queue
change that a fault interrupted is kept and repeated when the fault clears (changes are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.spec import CancelToken, Pipeline
from watcher.attempt import (
    AttemptRequest,
    Context,
    Ending,
    Runner,
    Verdict,
    attempt,
    judge,
    local_log_hint,
    shown_inputs,
)
from watcher.cancels import CANCELLED_MESSAGE
from watcher.config import Config
from watcher.faults import Fault, FaultBoard, FaultKind, Places, Scope, classify
from watcher.jobqueue import Job, JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle, Outcome
from watcher.outbox import ProgressThrottle
from watcher.rates import RateStore, remember
from watcher.supervisor import make_runner

log = logging.getLogger("facedrop.worker")

PipelineFactory = Callable[[Config], Pipeline]
KILL_MARGIN = 1.0  # seconds before the shutdown deadline at which a stuck child is killed
Change = tuple[JobState, Outcome]


def retry_delay(base: float, counted: int) -> float:
    """Exponential backoff between a job's attempts: base, 2 base, 4 base..."""
    return base * 2 ** max(0, counted - 1)


class Worker:
    """The local ``Executor``: runs queued jobs in a thread, one at a time; ``poll`` is called
    from the daemon loop."""

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
        self._faults = faults
        self._places = places
        self._clock = clock
        self._crash = crash
        self._log_hint = local_log_hint(config.paths.logs)
        self._runner: Runner = make_runner(factory)
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
        """Cancel the running job; if it does not stop by ``deadline``, requeue it anyway.

        The worker child is stopped either way (killed if the job ignores the cancel).
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._runner.close()
            return
        self.cancel()
        thread.join(max(0.0, deadline - time.monotonic() - KILL_MARGIN))
        if thread.is_alive():
            self._runner.stop_now()  # the child dies; the attempt ends cancelled, uncounted
            thread.join(max(0.0, deadline - time.monotonic()))
        self._runner.close()
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
        progress = _Progress(self._lifecycle, job, self._faults)
        request = AttemptRequest(job.name, self._lifecycle.payload_path(job), folder,
                                 self._config, shown_inputs(folder))
        try:
            outbox.begin_attempt(folder)
        except Exception as err:
            ending = judge(err, self._context(request, job), self._places, self._check)
        else:
            ending = attempt(self._runner, request, progress, cancel, counted=job.counted,
                             max_attempts=self._config.daemon.max_attempts,
                             places=self._places, log_hint=self._log_hint,
                             check=self._check)
        return self._act(job, ending)

    def _act(self, job: Job, ending: Ending) -> Change:
        """The verdict, as a queue change."""
        verdict = ending.verdict
        if verdict is Verdict.DONE:
            assert ending.finished is not None
            for kind in (FaultKind.WEIGHTS, FaultKind.DEVICE):
                self._faults.resolve(kind)
            self._crash("run.video")
            record = ending.finished.record
            remember(RateStore(self._config.paths.state), record)  # this machine's estimates
            return JobState.DONE, Outcome(
                video=ending.finished.video,
                realtime_factor=record.realtime_factor,
                stages=tuple(record.stages),
                total=record.total_seconds,
            )
        if verdict is Verdict.CANCELLED:
            if job.id in self._by_request:  # a user's cancel ends the job; a shutdown's does not
                self._by_request.discard(job.id)
                return JobState.FAILED, Outcome(detail="cancelled by request",
                                                error=CANCELLED_MESSAGE)
            return JobState.QUEUED, Outcome(detail="cancelled", counted=False)
        if verdict is Verdict.GIVE_BACK:
            assert ending.fault is not None
            self._faults.report(ending.fault)
            log.warning("job %s waits: %s", job.name, ending.fault.reason)
            return JobState.QUEUED, Outcome(detail=f"paused: {ending.fault.reason}",
                                            counted=False)
        if verdict is Verdict.FAILED:
            return JobState.FAILED, Outcome(error=ending.message)
        delay = retry_delay(self._config.daemon.retry_backoff_seconds, job.counted)
        return JobState.QUEUED, Outcome(
            detail="failed: " + ending.message.splitlines()[0],
            error=ending.message,
            not_before=self._clock() + delay,
        )

    def _check(self) -> Fault | None:
        return self._faults.check((FaultKind.OUTBOX, FaultKind.STATE))

    def _context(self, request: AttemptRequest, job: Job) -> Context:
        return Context(request, job.counted, self._config.daemon.max_attempts, self._log_hint)

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

