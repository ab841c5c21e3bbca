"""The watch-folder daemon: the wiring of lock, signals, watcher, Intake and Worker.

The parts: ``Intake`` (inbox -> work area -> queue), the ``JobQueue`` (``SqliteQueue``), the
``Executor`` that ``queue.backend`` picks (the local ``Worker``: one job at a time, models
resident; or a fleet's ``Dispatcher``), the ``Outbox`` and the one transition function
(``Lifecycle``). On start the state is reconciled (``reconcile``). The main thread runs the loop,
woken by watchdog and at least every ``rescan_seconds``. An environment fault pauses intake or
work (``FaultBoard``) and never ends the loop. SIGTERM/SIGINT stop claiming, cancel the running
job at its next chunk boundary and leave it queued; the process returns within
``shutdown_timeout``, its worker child stopped. SIGHUP does the same and sets
``reload_requested``: ``facedrop watch`` then reopens its log, reloads the configuration and
starts again in the same process (the interrupted job runs again, uncounted).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError, InputError
from pipeline.spec import Pipeline
from watcher.attempt import AttemptRequest, WorkerCrashed
from watcher.cancels import CANCELLED_MESSAGE, CancelRequests
from watcher.config import Config, QueueBackend
from watcher.estimate import job_estimate
from watcher.executor import Executor
from watcher.faults import FaultBoard, FaultKind, Places, classify, write_probe
from watcher.inbox_scan import InboxScanner
from watcher.intake import Intake
from watcher.jobfolder import parse_job_folder
from watcher.jobqueue import JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle, Outcome
from watcher.outbox import Outbox, Rename
from watcher.pipelineref import PIPELINE_ENV, PipelineRef
from watcher.rates import RateStore
from watcher.readiness import ReadinessTracker
from watcher.reconcile import reconcile
from watcher.runtime import RuntimeFile
from watcher.sdnotify import ServiceNotifier
from watcher.sqlite_queue import SqliteQueue
from watcher.supervisor import ChildRunner
from watcher.watch import InboxWatcher
from watcher.wholeness_child import IsolatedWholeness
from watcher.worker import Worker

if TYPE_CHECKING:
    from watcher.fleet.dispatcher import Dispatcher

log = logging.getLogger("facedrop.daemon")

DEFAULT_PIPELINE = "pipeline.chain.runner:Runner"
LOCK_NAME = "daemon.lock"
WORK = "work"  # the claimed job folders, under the state folder
PID_WIDTH = 16
PipelineFactory = Callable[[Config], Pipeline]
Notifier = Callable[[str, str], None]  # (title, message)


def pipeline_factory(name: str | None = None) -> PipelineRef:
    """A factory for the pipeline class ``module:Class``, built as ``Class(config.pipeline)``.

    The name defaults to ``$FACEDROP_PIPELINE`` (a test hook), else
    ``pipeline.chain.runner:Runner``. It is a ``PipelineRef``: the worker child imports and
    builds it when the first job runs, so the daemon starts without loading models.
    """
    return PipelineRef(name or os.environ.get(PIPELINE_ENV) or DEFAULT_PIPELINE)


class DaemonLock:
    """An exclusive lock on ``<state>/daemon.lock`` holding the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(
                f"another facedrop daemon (pid {pid or '?'}) is already using this state folder",
                fix="stop it first, or give this one its own paths.state",
                file=self.path,
            ) from None
        self._fd = fd
        try:  # fixed width, written in place: a full state disk needs no new block for it
            os.pwrite(fd, f"{os.getpid()}\n".ljust(PID_WIDTH).encode(), 0)
            os.ftruncate(fd, PID_WIDTH)
        except OSError as err:  # the lock itself holds; status just cannot name the pid
            log.warning("cannot write the pid into %s (%s)", self.path, err.strerror)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def running_daemon_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding the state folder's lock, or None if none runs."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        return None
    finally:
        os.close(fd)


class Daemon:
    """The wiring. Construct with a config and a pipeline factory, then call ``run()``.

    ``rename`` (the claim/move primitive), ``clock`` (readiness), ``wall`` (retry times),
    ``notifier``, ``service`` (systemd's READY/WATCHDOG/STOPPING, pinged once per loop pass)
    and ``crash`` (kill points, tests only) are injectable so tests can simulate EXDEV, time,
    notification centres, a supervisor and kills. ``InboxScanner`` is the one classifier of
    inbox entries.
    """

    def __init__(
        self,
        config: Config,
        pipeline_factory: PipelineFactory,
        *,
        rename: Rename = os.rename,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        service: ServiceNotifier | None = None,
        crash: CrashHook = no_crash,
    ) -> None:
        self.config = config
        self._service = service or ServiceNotifier()
        self.paths = config.paths
        self.work_dir = config.paths.state / WORK
        self._factory = pipeline_factory
        self._rename = rename
        self._clock = clock
        self._wall = wall
        self._notifier = notifier if config.daemon.notify else None
        self._crash = crash
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_at: float | None = None
        self.places = Places(self.paths.inbox, self.paths.outbox, self.paths.state,
                             self.paths.weights)
        self.faults = FaultBoard(
            {FaultKind.OUTBOX: self._probe_outbox, FaultKind.STATE: self._probe_state},
            notifier=self._notifier,
            # Retry at least as often as the inbox is rescanned, however long a fault lasts.
            cap=max(1.0, 3 * config.daemon.rescan_seconds),
        )
        rates = RateStore(self.paths.state)
        self.outbox = Outbox(self.paths.outbox, rename=rename, crash=crash,
                             estimator=lambda job: job_estimate(self.work_dir / job.payload,
                                                                rates))
        self.queue: SqliteQueue | None = None
        self.worker: Executor | None = None
        self.intake: Intake | None = None
        self.lifecycle: Lifecycle | None = None
        self._reconciled = False
        self._cancels = CancelRequests(self.paths.state)
        self.reload_requested = False
        # decoding an inbox file to judge it whole happens in a child: a crash there is the
        # file's, never the daemon's
        self._wholeness = IsolatedWholeness()

    def _probe_outbox(self) -> bool:
        try:
            self.paths.outbox.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return write_probe(self.paths.outbox)

    def _probe_state(self) -> bool:
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return write_probe(self.work_dir)

    # ---- lifecycle ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop claiming, cancel the running job at its next chunk boundary, leave the loop."""
        if not self._stop.is_set():
            self._stop_at = time.monotonic()
            self._stop.set()
        if self.worker is not None:
            self.worker.cancel()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            log.info("SIGHUP: stopping to reload the configuration and reopen the log")
            self.reload_requested = True
        else:
            log.info("signal %d: stopping", signum)
        self.request_stop()

    def run(self, *, burst: bool = False, install_signals: bool = True) -> int:
        """Serve until stopped (or, with ``burst``, until the inbox and queue are empty)."""
        lock = DaemonLock(self.paths.state)
        lock.acquire()
        previous = {}
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                previous[sig] = signal.signal(sig, self._on_signal)
        watcher = InboxWatcher(self.paths.inbox, self._wake.set)
        runtime = RuntimeFile(self.paths.state)
        try:
            log.info("watching %s", self.paths.inbox)
            self._loop(watcher, runtime, burst)
        finally:
            if self.reload_requested:  # SIGHUP: this process starts again at once
                self._service.reloading()
            else:
                self._service.stopping()
            if self.worker is not None:
                started = self._stop_at or time.monotonic()
                # Keep a margin for the bookkeeping so the whole exit fits the timeout.
                self.worker.shutdown(started + self.config.daemon.shutdown_timeout - 0.5)
            watcher.stop()
            runtime.close()
            self._wholeness.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.queue is not None:
                self.queue.close()
            lock.release()
        return 0

    def _wire(self) -> None:
        if self.queue is None:  # the record of jobs, whichever backend runs them
            self.queue = SqliteQueue(self.paths.state, clock=self._wall)
        self.lifecycle = lifecycle = Lifecycle(
            self.queue, self.outbox, self.work_dir, crash=self._crash, notify=self._notifier
        )
        d = self.config.daemon
        self.intake = Intake(
            self.paths.inbox, self.work_dir, self.outbox, lifecycle,
            InboxScanner(
                ReadinessTracker(d.settle_seconds, d.settle_checks,
                                 grace_seconds=d.incomplete_grace_seconds, clock=self._clock,
                                 whole=self._wholeness),
                clock=self._clock,
            ),
            self.faults,
            rename=self._rename, crash=self._crash, explain=self._input_problem,
            stopping=self._stop.is_set,
        )
        self.worker = self._executor(lifecycle)
        self.worker.on_idle = self._wake.set

    def _executor(self, lifecycle: Lifecycle) -> Executor:
        """The one choice ``queue.backend`` makes: who runs the queued jobs."""
        if self.config.queue.backend is QueueBackend.REDIS:
            return self._dispatcher(lifecycle)
        return Worker(lifecycle, self.config, self._factory, self.faults, self.places,
                      clock=self._wall, crash=self._crash)

    def _dispatcher(self, lifecycle: Lifecycle) -> Dispatcher:
        """queue.backend redis: jobs run on ``facedrop worker``s; this sends and collects."""
        # imported only for a fleet: Dramatiq and Redis load nowhere else
        from watcher.fleet.dispatcher import Dispatcher

        dispatcher = Dispatcher(lifecycle, self.config, self.faults, self.places,
                                clock=self._wall, crash=self._crash)
        dispatcher.adopt()  # before reconciliation: jobs out in the fleet were not interrupted
        # While Redis is away the intake holds new jobs in the inbox (not claimed into a work
        # area that cannot be dispatched); the probe says when it may claim again.
        self.faults.set_probe(FaultKind.FLEET, dispatcher.reachable)
        return dispatcher

    def _input_problem(self, folder: Path) -> InputError | None:
        """The parser's specific error for a folder that never became ready (None: none).

        With a named pipeline the folder is parsed (its media decoded) in a short-lived worker
        child, like every job: a file that crashes a decoder fails this folder, not the daemon.
        """
        if not isinstance(self._factory, PipelineRef):
            try:
                parse_job_folder(folder, self.config, folder.name)
            except InputError as err:
                return err
            return None
        prober = ChildRunner(self._factory, crash_spec="")
        try:
            prober.probe(AttemptRequest(folder.name, folder, folder, self.config, str(folder)))
        except InputError as err:
            return err
        except WorkerCrashed as err:
            return InputError(f"reading the job's files crashed facedrop's reader: "
                              f"{err.problem}", file=err.file, fix=err.fix)
        except Exception:  # the job's own attempt will say what is wrong
            log.exception("could not check the job folder %s", folder)
        finally:
            prober.close()
        return None

    def _reconcile(self) -> None:
        """Once per start, before anything is claimed or run (repeated if a fault stops it)."""
        if self._reconciled or self.lifecycle is None:
            return
        for path in (self.paths.outbox, self.work_dir):
            path.mkdir(parents=True, exist_ok=True)
        d = self.config.daemon
        reconcile(self.lifecycle, max_attempts=d.max_attempts, backoff=d.retry_backoff_seconds,
                  log_path=self.paths.logs / "facedrop.log", clock=self._wall)
        # a kill -9 while rates.json was written leaves its temp file; nothing else writes it
        # now (a concurrent 'facedrop run' would only lose that one sample, logged)
        RateStore(self.paths.state).sweep()
        self._reconciled = True

    def _loop(self, watcher: InboxWatcher, runtime: RuntimeFile, burst: bool) -> None:
        d = self.config.daemon
        while not self._stop.is_set():
            pending, busy = 0, False
            try:
                if self.worker is None or self.intake is None:
                    self._wire()  # opening the database may meet a full disk: retried here
                assert self.worker is not None and self.intake is not None
                self._reconcile()
                watcher.ensure()
                pending = self.intake.scan()
                busy = self.worker.poll(self._stop.is_set())
                self._apply_cancels()
            except Exception as err:  # never leave the loop: pause, say why, try again
                fault = classify(err, self.places, FaultKind.STATE)
                if fault is not None:
                    self.faults.report(fault)
                else:
                    log.exception("error in the watch loop")
                pending, busy = 1, True
            runtime.write(self.faults.active(), self.intake.verdicts if self.intake else [])
            self._service.alive(f"watching {self.paths.inbox}")
            waiting = bool(self.faults.active()) or (burst and self._queued())
            if burst and not pending and not busy and not waiting:
                return
            timeout = d.settle_seconds if pending or burst or busy else d.rescan_seconds
            retry = self.faults.next_try_in()
            if retry is not None:
                timeout = min(timeout, max(retry, 0.05))
            self._wake.wait(min(timeout, self._service.interval))
            self._wake.clear()

    def _apply_cancels(self) -> None:
        """Cancel requests (``watcher.cancels``): a queued job fails now, a running one stops."""
        if (self.config.queue.backend is not QueueBackend.LOCAL or self.worker is None
                or self.lifecycle is None):
            return  # a fleet cancels through Redis
        for job_id in self._cancels.pending():
            try:
                job = self.lifecycle.queue.get(job_id)
            except KeyError:
                self._cancels.clear(job_id)
                continue
            if job.state is JobState.QUEUED:
                self.lifecycle.transition(job_id, JobState.FAILED,
                                          Outcome(detail="cancelled by request",
                                                  error=CANCELLED_MESSAGE))
                self._cancels.clear(job_id)
            elif job.state is JobState.RUNNING:
                self.worker.stop_job(job_id)
            else:
                self._cancels.clear(job_id)

    def _queued(self) -> bool:
        if self.worker is None:
            return True
        try:
            return self.worker.waiting()
        except Exception:
            return True
