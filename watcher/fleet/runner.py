"""``facedrop worker``: one process per GPU, one job at a time, models resident, no fork.

A ``dramatiq.Worker`` with one worker thread runs in this process (Dramatiq's CLI would fork
or spawn a child per process it manages; fork is unsafe with MPS and CUDA). The jobs run in one
resident worker child started with spawn, which keeps its models loaded between jobs.
Each message is handled by ``FleetWorker.handle``; the job itself is one ``watcher.attempt`` run
in the supervised worker child (``watcher.supervisor``), and ``handle`` acts on its verdict:

1. a job already finished (retired by the intake) or already committed is acknowledged without
   running: that is a redelivery after a worker died past its commit, or a duplicate send;
2. a job a live worker owns is sent again later (delayed), never run twice at once;
3. otherwise the run is counted in Redis (``attempt``, ``counted``) before any work, the files are
   fetched by sha256 (hash checked), the pipeline runs into a private folder, the result files
   are stored under job + attempt and committed; the first commit wins.

A worker that cannot run jobs (missing weights, a device it lacks, a full disk) gives the job back
uncounted, stops consuming and says why on its card in ``facedrop status``; it never fails
them. It tries again every ``RECHECK_SECONDS``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from pipeline.device import pick_device
from pipeline.errors import FacedropError
from pipeline.prerequisites import ChecksPrerequisites, JobNeeds, weights_gap
from pipeline.spec import CancelToken, Pipeline
from watcher.attempt import (
    AttemptRequest,
    Context,
    Ending,
    Runner,
    attempt,
    given_up,
    judge,
    worker_log_hint,
)
from watcher.attempt import Verdict as Attempted
from watcher.cancels import CANCELLED_MESSAGE
from watcher.config import Config
from watcher.faults import Places
from watcher.filetree import remove_tree
from watcher.fleet.broker import (
    BROKER_ERRORS,
    UNREACHABLE,
    declare,
    job_message,
    make_broker,
    ping,
)
from watcher.fleet.dispatcher import where
from watcher.fleet.ledger import Ledger
from watcher.fleet.messages import OUTBOX_MARK, JobMessage, Manifest, Verdict, commit
from watcher.fleet.outage import Outage
from watcher.fleet.scratch import Scratch
from watcher.killpoints import CrashHook, no_crash
from watcher.outbox import INPUT, ProgressThrottle, first_line
from watcher.sdnotify import ServiceNotifier
from watcher.storage import Storage
from watcher.supervisor import make_runner

log = logging.getLogger("facedrop.fleet.worker")

RECHECK_SECONDS = 10.0  # a worker that cannot run jobs looks again this often
PipelineFactory = Callable[[Config], Pipeline]
GIVEN_UP_FIX = "check the workers' logs for what stopped it, then submit the job again."
T = TypeVar("T")


class _Retry(Exception):
    """The attempt failed and counted: Dramatiq's Retries sends the job again after a backoff."""


@dataclass(slots=True)
class _Current:
    key: str
    name: str
    attempt: int
    cancel: CancelToken = field(default_factory=CancelToken)
    stage: str = "starting"
    progress: float = 0.0


class _AfterAck(Middleware):
    """Reports the acknowledgement to the crash hook (tests kill the worker right after it)."""

    def __init__(self, crash: CrashHook) -> None:
        self._crash = crash

    def after_ack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._crash("fleet.acked")


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class FleetWorker:
    """The worker process: a heartbeat card, a Dramatiq consumer when able, ``handle`` per job."""

    def __init__(
        self,
        config: Config,
        factory: PipelineFactory,
        ledger: Ledger,
        storage: Storage,
        *,
        ident: str | None = None,
        crash: CrashHook = no_crash,
        recheck: float = RECHECK_SECONDS,
        service: ServiceNotifier | None = None,
    ) -> None:
        self._config = config
        self._service = service or ServiceNotifier()  # systemd: pinged once per loop pass
        self._factory = factory
        self._ledger = ledger
        self._storage = storage
        self.ident = ident or worker_id()
        self._log_hint = worker_log_hint(self.ident)
        self._crash = crash
        self._recheck = recheck
        self._places = Places(config.paths.inbox, config.paths.outbox, config.paths.state,
                              config.paths.weights)
        self._pipeline: Pipeline | None = None  # built here for its prerequisites only
        self._runner: Runner = make_runner(factory)  # jobs run in the worker child
        self._broker: dramatiq.Broker | None = None
        self._current: _Current | None = None
        self._fault = ""  # why this worker cannot run jobs now ("" = it can)
        self._fault_at = 0.0
        self._state = "starting"
        self._device = config.pipeline.device
        self._started = time.time()
        self._stop = threading.Event()
        self.scratch = Scratch(config.paths.cache / "fleet-work", self.ident)
        self.outage = Outage(where(config.queue.url))
        # A progress record outlives a silent stage (the heartbeat renews it), not its worker.
        self._progress_ttl = max(10.0, 3 * config.queue.heartbeat_timeout_seconds)

    # ---- the process -----------------------------------------------------------------------
    def serve(self) -> int:
        """Consume until ``stop``; returns the exit status."""
        self.scratch.open()  # and remove what killed workers left
        beat = threading.Thread(target=self._heartbeat, name="card", daemon=True)
        beat.start()
        consumer: dramatiq.Worker | None = None
        try:
            while not self._stop.is_set():
                reason = self._unready()
                if reason and consumer is not None:
                    self._stop_consumer(consumer)
                    consumer = None
                elif not reason and consumer is None:
                    consumer = self._start_consumer()
                if consumer is None:
                    self._state = "not taking jobs" if reason else "waiting for Redis"
                elif self._current is None:
                    self._state = "idle"
                self._service.alive(f"worker {self.ident}: {self._state}")
                self._stop.wait(min(0.5 if consumer is None and not reason else 1.0,
                                    self._service.interval))
        finally:
            self._service.stopping()
            current = self._current
            if current is not None:
                current.cancel.cancel()  # shutdown: the job goes back uncounted
            if consumer is not None:
                self._stop_consumer(consumer)
            self._runner.close()  # no worker child outlives this process
            try:
                self._ledger.drop_worker(self.ident)
            except BROKER_ERRORS:
                pass
            self._storage.close()
            self.scratch.close()
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _start_consumer(self) -> dramatiq.Worker | None:
        try:
            broker = make_broker(self._config.queue,
                                 retry_backoff_seconds=self._config.daemon.retry_backoff_seconds,
                                 extra=(_AfterAck(self._crash),))
            declare(broker, self.handle)
            ping(broker)
        except BROKER_ERRORS as err:
            self.outage.down(err)
            return None
        # One thread: one job at a time on this device. Prefetch 1: a worker holds no job it
        # is not running, so a waiting job goes to the next free worker, not to a busy one.
        consumer = dramatiq.Worker(broker, worker_threads=1, worker_timeout=1000)
        consumer.queue_prefetch = 1
        consumer.delay_prefetch = 1
        self._broker = broker
        consumer.start()
        log.info("worker %s taking jobs (device %s)", self.ident, self._device)
        return consumer

    def _stop_consumer(self, consumer: dramatiq.Worker) -> None:
        consumer.stop(timeout=int(self._config.daemon.shutdown_timeout * 1000))
        consumer.broker.close()

    def _unready(self) -> str:
        """Why this worker cannot take jobs now ("" = it can)."""
        if self._fault and time.monotonic() - self._fault_at < self._recheck:
            return self._fault
        try:
            # The device first: a GPU that is gone (or --device naming one this machine lacks)
            # is this worker's problem, never the job's.
            self._device = str(pick_device(self._config.pipeline.device))
            if self._pipeline is None:
                self._pipeline = self._factory(self._config)  # models stay loaded between jobs
            # The models a default job needs: this worker's own prerequisite. A driving clip
            # is the job's (its name is in job.yaml); enhance's weights are checked when a job
            # asks for them (a WeightsError gives that job back).
            gap = (weights_gap(self._config.pipeline, JobNeeds(lipsync=True, enhance=False))
                   if isinstance(self._pipeline, ChecksPrerequisites) else None)
        except FacedropError as err:
            self._set_fault(err.problem)
            return self._fault
        if gap is not None:
            self._set_fault(f"{gap.what} (fix: {gap.fix})")
            return self._fault
        self._fault = ""
        return ""

    def _set_fault(self, reason: str) -> None:
        if reason != self._fault:
            log.warning("not taking jobs: %s", reason)
        self._fault, self._fault_at = reason, time.monotonic()

    def _heartbeat(self) -> None:
        """Publish this worker's card; pass a cancel request to the running job."""
        period = max(0.2, self._config.queue.heartbeat_timeout_seconds / 5)
        while not self._stop.is_set():
            current = self._current
            try:
                if current is not None and self._ledger.cancel_requested(current.key):
                    current.cancel.cancel()
                if current is not None:
                    self._ledger.renew_progress(current.key, self._progress_ttl)
                self._ledger.publish_worker(self.ident, self._card(current),
                                            ttl=self._config.queue.heartbeat_timeout_seconds)
            except BROKER_ERRORS as err:
                self.outage.down(err)  # one line per outage; the card is published when back
            else:
                self.outage.up()
            self._stop.wait(period)

    def _card(self, current: _Current | None) -> dict[str, Any]:
        return {
            "host": socket.gethostname(), "pid": os.getpid(),
            "device": self._device,
            "state": "running" if current is not None else self._state,
            "reason": self._fault, "job": current.name if current else "",
            "attempt": current.attempt if current else "",
            "stage": current.stage if current else "",
            "progress": round(current.progress, 4) if current else "",
            "heartbeat": f"{time.time():.3f}", "started": f"{self._started:.3f}",
        }

    # ---- one message -----------------------------------------------------------------------
    def handle(self, payload: dict[str, Any]) -> None:
        """The actor: run the job once, or recognise it as done or owned elsewhere."""
        msg = JobMessage.from_json(payload)
        key, ledger, patient = msg.key, self._ledger, self._patient
        if patient(lambda: ledger.finished(key)) or self._storage.committed(key) is not None:
            log.info("job %s is already finished; acknowledged without running", msg.name)
            return
        self._crash("fleet.received")
        if patient(lambda: ledger.cancel_requested(key)):
            self._commit(key, patient(lambda: ledger.next_attempt(key)),
                         self._failed(CANCELLED_MESSAGE))
            return
        owner = patient(lambda: ledger.claim(key, self.ident))
        if owner:  # a live worker runs it (a duplicate send): look again later
            self._send_again(payload, delay=self._config.queue.heartbeat_timeout_seconds)
            return
        self._crash("fleet.claimed")
        ran = patient(lambda: ledger.counted(key))
        if ran >= self._config.daemon.max_attempts:
            # Every counted run was interrupted. Giving up does not count a run itself, so a
            # kill during this commit cannot inflate the number the message gives.
            self._commit(key, patient(lambda: ledger.next_attempt(key)),
                         self._failed(given_up(ran, stopped="a worker", fix=GIVEN_UP_FIX)))
            return
        attempt, counted = patient(lambda: ledger.begin(key))
        self._crash("fleet.started")
        self._current = current = _Current(key, msg.name, attempt)
        log.info("job %s: attempt %d started", msg.name, attempt)  # one line per job event
        digests: dict[str, str] = {}
        try:
            ending, manifest = self._attempt(msg, current, digests, counted)
        finally:
            self._current = None
            remove_tree(self._workdir(key, attempt))
        verdict = ending.verdict
        if verdict is Attempted.CANCELLED and patient(lambda: ledger.cancel_requested(key)):
            manifest = self._failed(CANCELLED_MESSAGE)
        elif verdict in (Attempted.GIVE_BACK, Attempted.CANCELLED):
            patient(lambda: ledger.give_back(key, self.ident))
            self._send_again(payload)
            if ending.fault is not None:
                log.warning("job %s given back: %s", msg.name, ending.fault.reason)
                self._set_fault(ending.fault.reason)
            return
        elif verdict is Attempted.RETRY:
            log.error("job %s attempt %d failed; it will be retried: %s", msg.name, attempt,
                      first_line(ending.message))
            patient(lambda: ledger.release(key, self.ident))
            raise _Retry(ending.message)  # Dramatiq's Retries sends it again after a backoff
        elif verdict is Attempted.FAILED:
            manifest = self._failed(ending.message)
        assert manifest is not None
        self._commit(key, attempt, manifest, digests)
        log.info("job %s: %s", msg.name, _outcome(manifest))

    def _commit(self, key: str, attempt: int, manifest: Manifest,
                digests: dict[str, str] | None = None) -> None:
        winner = commit(self._storage, key, attempt, manifest, digests or {}, self.scratch.own)
        self._crash("fleet.committed")
        if winner != attempt:
            log.info("job %s: attempt %d was committed first; this result is dropped", key,
                     winner)
        self._patient(lambda: self._ledger.release(key, self.ident))
        self._crash("fleet.released")

    def _send_again(self, payload: dict[str, Any], delay: float = 0.0) -> None:
        broker = self._broker
        assert broker is not None
        self._patient(lambda: broker.enqueue(job_message(payload),
                                             delay=int(delay * 1000) if delay else None))

    def _patient(self, call: Callable[[], T]) -> T:
        """``call()``, waiting out a Redis outage (a job is never failed for one)."""
        delay = 0.2
        while True:
            try:
                return call()
            except UNREACHABLE as err:
                if self._stop.is_set():
                    raise
                self.outage.down(err)  # logged once per outage, by whoever meets it first
                self._stop.wait(delay)
                delay = min(5.0, delay * 2)

    def _workdir(self, key: str, attempt: int) -> Path:
        return self.scratch.attempt(key, attempt)

    def _attempt(self, msg: JobMessage, current: _Current, digests: dict[str, str],
                 counted: int) -> tuple[Ending, Manifest | None]:
        """Fetch, run (one ``watcher.attempt``), store: the verdict, and the manifest to commit
        for a finished run."""
        base = self._workdir(msg.key, current.attempt)
        self.scratch.empty()  # at most one attempt's files per worker
        source, out = base / "in" / msg.name, base / "out"
        request = AttemptRequest(msg.name, source, out, self._config, f"{OUTBOX_MARK}/{INPUT}")
        context = Context(request, counted, self._config.daemon.max_attempts, self._log_hint)
        try:
            remove_tree(base)
            out.mkdir(parents=True)
            for rel, digest in msg.files.items():
                (source / rel).parent.mkdir(parents=True, exist_ok=True)
                self._storage.get_blob(digest, source / rel)
            self._crash("fleet.fetched")
        except Exception as err:
            return judge(err, context, self._places), None
        ending = attempt(self._runner, request, self._progress(current), current.cancel,
                         counted=counted, max_attempts=self._config.daemon.max_attempts,
                         places=self._places, log_hint=self._log_hint)
        if ending.verdict is not Attempted.DONE:
            return ending, None
        assert ending.finished is not None
        self._crash("fleet.rendered")
        try:
            names = sorted(p.name for p in out.iterdir() if p.is_file())
            for n, name in enumerate(names):
                digests[name] = self._storage.put_result(msg.key, current.attempt, name,
                                                         out / name)
                if n == 0:
                    self._crash("fleet.result_put")
        except Exception as err:
            return judge(err, context, self._places), None
        self._crash("fleet.result_written")
        record = ending.finished.record
        return ending, Manifest(Verdict.DONE, self.ident, files=tuple(names),
                                video=ending.finished.video,
                                realtime_factor=record.realtime_factor,
                                total=record.total_seconds)

    def _progress(self, current: _Current) -> Callable[[str, float], None]:
        throttle = ProgressThrottle()
        seen = [False]

        def report(stage: str, fraction: float) -> None:
            if stage != current.stage:
                log.info("job %s: %s", current.name, stage)
            current.stage, current.progress = stage, fraction
            if not throttle.due(stage, fraction):
                return
            try:
                self._ledger.report_progress(current.key, current.attempt, stage, fraction,
                                             self.ident, ttl=self._progress_ttl)
            except BROKER_ERRORS:  # progress is advisory
                return
            if not seen[0]:
                seen[0] = True
                self._crash("fleet.progress")

        return report

    def _failed(self, error: str) -> Manifest:
        return Manifest(Verdict.FAILED, self.ident, error=error)

def _outcome(manifest: Manifest) -> str:
    """A job's result in a few words, for the worker's one line about it."""
    if manifest.verdict is Verdict.DONE:
        return (f"done: {manifest.video} in {manifest.total or 0:.1f} s "
                f"({manifest.realtime_factor:.2f}x realtime)")
    return f"{manifest.verdict.value}: {first_line(manifest.error)}"

