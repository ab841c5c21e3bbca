"""The watch-folder daemon: inbox -> claim -> queue -> one job at a time -> outbox, exactly once.

The main thread scans the inbox (woken by watchdog, and at least every ``rescan_seconds``),
claims complete job folders by renaming them into ``<state>/work/`` and starts the oldest queued
job in a worker thread. SIGTERM/SIGINT stop claiming, cancel the running job at its next chunk
boundary and leave it queued; the process returns within ``shutdown_timeout``.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pipeline.errors import Cancelled, ConfigError, FacedropError, InputError
from pipeline.spec import CancelToken, Pipeline
from watcher.config import Config
from watcher.execute import JobResult, execute_job, remove_partials
from watcher.logs import log_job_state
from watcher.macos.notify import job_notification
from watcher.outbox import Rename, move, reserve_dir, write_atomic, write_status
from watcher.readiness import ReadinessTracker
from watcher.state import JobRow, JobState, StateDB
from watcher.watch import InboxWatcher

log = logging.getLogger("facedrop.daemon")

PIPELINE_ENV = "FACEDROP_PIPELINE"  # test hook: "module:Class" of the pipeline to run
DEFAULT_PIPELINE = "pipeline.chain.runner:Runner"
LOCK_NAME = "daemon.lock"
PipelineFactory = Callable[[Config], Pipeline]
Notifier = Callable[[str, str], None]  # (title, message)


def pipeline_factory(name: str | None = None) -> PipelineFactory:
    """A factory for the pipeline class ``module:Class``, built as ``Class(config.pipeline)``.

    The name defaults to ``$FACEDROP_PIPELINE`` (a test hook), else
    ``pipeline.chain.runner:Runner``.
    The import happens when the first job runs, so the daemon starts without loading models.
    """
    spec = name or os.environ.get(PIPELINE_ENV) or DEFAULT_PIPELINE
    module, _, attr = spec.partition(":")

    def build(config: Config) -> Pipeline:
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"the pipeline '{spec}' cannot be loaded ({err})",
                fix=f"unset {PIPELINE_ENV} or reinstall facedrop",
            ) from err
        return cls(config.pipeline)

    return build


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
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

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
    """The job loop. Construct with a config and a pipeline factory, then call ``run()``.

    ``rename`` (the claim/move primitive), ``clock`` (readiness) and ``notifier`` (done/failed
    notifications) are injectable so tests can simulate EXDEV, time and notification centres.
    """

    def __init__(
        self,
        config: Config,
        pipeline_factory: PipelineFactory,
        *,
        rename: Rename = os.rename,
        clock: Callable[[], float] = time.monotonic,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.paths = config.paths
        self.work_dir = config.paths.state / "work"
        self._factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self._rename = rename
        self._notifier = notifier
        d = config.daemon
        self._tracker = ReadinessTracker(
            d.settle_seconds, d.settle_checks, grace_seconds=d.incomplete_grace_seconds, clock=clock
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_at: float | None = None
        self._finish_lock = threading.Lock()
        self._abandoned: set[int] = set()
        self._worker: threading.Thread | None = None
        self._current: tuple[int, CancelToken] | None = None
        self.db: StateDB | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop claiming, cancel the running job at its next chunk boundary, leave the loop."""
        if not self._stop.is_set():
            self._stop_at = time.monotonic()
            self._stop.set()
        if self._current is not None:
            self._current[1].cancel()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        self.request_stop()

    def run(self, *, burst: bool = False, install_signals: bool = True) -> int:
        """Serve until stopped (or, with ``burst``, until the inbox and queue are empty)."""
        lock = DaemonLock(self.paths.state)
        lock.acquire()
        previous = {}
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        watcher = InboxWatcher(self.paths.inbox, self._wake.set)
        try:
            for path in (self.paths.inbox, self.paths.outbox, self.work_dir):
                path.mkdir(parents=True, exist_ok=True)
            self.db = StateDB(self.paths.state)
            self._recover()
            log.info("watching %s", self.paths.inbox)
            self._loop(watcher, burst)
        finally:
            self._shutdown()
            watcher.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.db is not None:
                self.db.close()
            lock.release()
        return 0

    def _loop(self, watcher: InboxWatcher, burst: bool) -> None:
        d = self.config.daemon
        while not self._stop.is_set():
            self.paths.inbox.mkdir(parents=True, exist_ok=True)  # deleted or renamed: recreate
            try:
                watcher.ensure()
                pending = self.scan()
                busy = self._start_next_job()
            except OSError:  # e.g. the outbox is unwritable: keep serving, try again later
                log.exception("error in the watch loop")
                pending, busy = 1, True
            if burst and not pending and not busy:
                return
            self._wake.wait(d.settle_seconds if pending or burst else d.rescan_seconds)
            self._wake.clear()

    def _shutdown(self) -> None:
        worker = self._worker
        if worker is None or not worker.is_alive():
            return
        if self._current is not None:
            self._current[1].cancel()
        started = self._stop_at or time.monotonic()
        # Keep a margin for the bookkeeping below so the whole exit fits the timeout.
        worker.join(
            max(0.0, self.config.daemon.shutdown_timeout - 0.5 - (time.monotonic() - started))
        )
        current = self._current
        if not worker.is_alive() or current is None:
            return
        assert self.db is not None
        with self._finish_lock:  # the worker cannot be half-way through finishing the job
            self._abandoned.add(current[0])
            if self.db.get(current[0]).state is JobState.RUNNING:
                self.db.transition(current[0], JobState.QUEUED, "cancelled", "shutdown timed out")
                log.warning("job %d did not stop in time; it will be retried", current[0])

    # ---- inbox -> work area ------------------------------------------------------------------
    def scan(self) -> int:
        """Check every job folder in the inbox, claim the ready ones; return how many wait."""
        try:
            entries = [p for p in self.paths.inbox.iterdir() if not p.name.startswith(".")]
        except OSError:
            return 0
        folders = []
        for path in entries:
            try:
                if path.is_dir() and not path.is_symlink():
                    folders.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue  # vanished between listing and stat
        pending = 0
        self._tracker.retain({folder for _mtime, folder in folders})
        for _mtime, folder in sorted(folders):
            if self._stop.is_set():
                break
            verdict = self._tracker.check(folder)
            if not verdict.ready:
                pending += 1
                continue
            self._tracker.forget(folder)
            self._claim(folder)
        return pending

    def _claim(self, folder: Path) -> None:
        """Rename a ready folder into ``work/<token>/<name>`` and queue it."""
        slot = self.work_dir / f"{time.time_ns():x}-{os.getpid()}"
        slot.mkdir(parents=True)
        dest = slot / folder.name
        try:
            move(folder, dest, self._rename)
        except FileNotFoundError:
            slot.rmdir()  # someone else took it, or the submitter removed it
            return
        except OSError as err:
            slot.rmdir()
            log.warning("cannot claim %s: %s; will try again", folder, err)
            return
        self._queue(dest)

    def _queue(self, work_folder: Path) -> JobRow:
        assert self.db is not None
        out = reserve_dir(self.paths.outbox, work_folder.name)
        row = self.db.add_job(work_folder.name, work_folder, out)
        write_status(out, JobState.QUEUED.value, job=row.name, attempt=0)
        log_job_state(row.name, JobState.QUEUED.value, attempt=0)
        return row

    def _recover(self) -> None:
        """After a crash or kill: requeue (or fail) running jobs; adopt unrecorded claims."""
        assert self.db is not None
        for row in self.db.jobs(JobState.RUNNING):
            if not row.work_dir.exists():
                self.db.transition(row.id, JobState.FAILED, "inputs missing", "inputs missing")
                continue
            self.db.transition(row.id, JobState.QUEUED, "crashed")
            log.warning("job %d (%s) was interrupted; it will be retried", row.id, row.name)
        known = self.db.known_work_dirs()
        for slot in sorted(self.work_dir.iterdir()):
            for folder in slot.iterdir() if slot.is_dir() else ():
                if folder not in known and not folder.name.startswith("."):
                    self._queue(folder)  # claimed, then killed before it was recorded

    # ---- running a job -----------------------------------------------------------------------
    def _start_next_job(self) -> bool:
        """Start the oldest queued job if none is running; True if a job is running."""
        if self._worker is not None and self._worker.is_alive():
            return True
        assert self.db is not None
        queued = self.db.jobs(JobState.QUEUED, limit=1)
        if not queued or self._stop.is_set():
            return False
        row = queued[0]
        self._current = (row.id, CancelToken())
        self._worker = threading.Thread(
            target=self._run_job, args=(row, self._current[1]), name=f"job-{row.id}", daemon=True
        )
        self._worker.start()
        return True

    def _run_job(self, row: JobRow, cancel: CancelToken) -> None:
        assert self.db is not None
        try:
            if self.db.counted_attempts(row.id) >= self.config.daemon.max_attempts:
                self._give_up(row, "it stopped the daemon every time it ran")
                return
            row.outbox_dir.mkdir(parents=True, exist_ok=True)  # in case someone removed it
            row = self.db.transition(row.id, JobState.RUNNING, "started")  # attempt counted
            log_job_state(row.name, JobState.RUNNING.value, attempt=row.attempts)
            write_status(
                row.outbox_dir,
                "running",
                job=row.name,
                stage="starting",
                progress=0.0,
                attempt=row.attempts,
            )
            self._attempt(row, cancel)
        except Exception:  # a bug in the bookkeeping itself: keep the daemon alive
            log.exception("job %d: unexpected error outside the pipeline", row.id)
        finally:
            self._current = None
            self._wake.set()

    def _attempt(self, row: JobRow, cancel: CancelToken) -> None:
        progress = _ProgressWriter(self.db, row)  # type: ignore[arg-type]
        folder = row.work_dir
        try:
            if self._pipeline is None:
                self._pipeline = self._factory(self.config)  # models stay loaded between jobs
            result = execute_job(
                folder, row.outbox_dir, row.name, self.config, self._pipeline, progress, cancel
            )
        except Cancelled:
            self._requeue(row, "cancelled")
        except InputError as err:
            self._finish(row, JobState.FAILED, _message_for_outbox(err, row))
        except FacedropError as err:
            self._retry_or_fail(row, _message_for_outbox(err, row))
        except Exception as err:
            log.exception("job %d (%s) attempt %d failed", row.id, row.name, row.attempts)
            self._retry_or_fail(row, self._bug_message(err))
        else:
            self._finish(row, JobState.DONE, result=result)

    def _bug_message(self, err: Exception) -> str:
        return (
            f"facedrop failed while making this video ({type(err).__name__}: {err}).\n"
            f"This is not a problem with your files. The details are in the log: "
            f"{self.paths.logs / 'facedrop.log'}\n"
        )

    def _retry_or_fail(self, row: JobRow, message: str) -> None:
        assert self.db is not None
        if row.id in self._abandoned:  # shutdown already requeued it and closed the state
            return
        if self.db.counted_attempts(row.id) >= self.config.daemon.max_attempts:
            self._finish(row, JobState.FAILED, message)
        else:
            self._requeue(row, "failed: " + message.splitlines()[0])

    def _requeue(self, row: JobRow, detail: str) -> None:
        assert self.db is not None
        with self._finish_lock:
            if row.id in self._abandoned:
                return
            remove_partials(row.outbox_dir)
            self.db.transition(row.id, JobState.QUEUED, detail)
            log_job_state(row.name, JobState.QUEUED.value, attempt=row.attempts, error=detail)
            write_status(
                row.outbox_dir, "queued", job=row.name, attempt=row.attempts, note="will be retried"
            )

    def _give_up(self, row: JobRow, why: str) -> None:
        message = (
            f"Error: the job was given up after {row.attempts} attempts: {why}.\n"
            f"Details are in the log: {self.paths.logs / 'facedrop.log'}\n"
        )
        self._finish(row, JobState.FAILED, message)

    def _finish(
        self, row: JobRow, state: JobState, error: str = "", result: JobResult | None = None
    ) -> None:
        """Complete the outbox folder (inputs, error.txt, status.json last) and record it."""
        assert self.db is not None
        out = row.outbox_dir
        with self._finish_lock:
            if row.id in self._abandoned:
                return
            remove_partials(out)
            if error:
                write_atomic(out / "error.txt", error)
            if row.work_dir.exists():
                move(row.work_dir, _free_name(out / "input"), self._rename)
                _remove_empty(row.work_dir.parent)
            row = self.db.transition(
                row.id, state, "finished", error.splitlines()[0] if error else ""
            )
            seconds = round((row.finished_at or 0) - (row.started_at or row.claimed_at), 3)
            fields: dict[str, object] = {
                "job": row.name,
                "attempt": row.attempts,
                "seconds": seconds,
            }
            if result is not None:
                fields["video"] = result.video.name
                fields["realtime_factor"] = round(result.record.realtime_factor, 4)
            if error:
                fields["error"] = error.splitlines()[0]
            write_status(out, state.value, **fields)
        record = result.record if result is not None else None
        log_job_state(
            row.name,
            state.value,
            attempt=row.attempts,
            error=error,
            stages=record.stages if record else (),
            total=record.total_seconds if record else None,
        )
        if self._notifier is not None and self.config.daemon.notify:
            try:
                video = result.video if result is not None else None
                self._notifier(*job_notification(row.name, video=video, error=error))
            except Exception:  # a notification is a courtesy; never let it break the daemon
                log.exception("notification failed")


class _ProgressWriter:
    """The progress callback: records stage and fraction, at most a few times a second."""

    def __init__(self, db: StateDB, row: JobRow, interval: float = 0.25) -> None:
        self._db, self._row, self._interval = db, row, interval
        self._last = (0.0, "")

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage == self._last[1] and now - self._last[0] < self._interval and fraction < 1.0:
            return
        self._last = (now, stage)
        try:
            self._db.set_progress(self._row.id, stage, fraction)
            write_status(
                self._row.outbox_dir,
                "running",
                job=self._row.name,
                stage=stage,
                progress=round(fraction, 4),
                attempt=self._row.attempts,
            )
        except OSError:
            log.warning("could not record progress of job %d", self._row.id)


def _message_for_outbox(err: FacedropError, row: JobRow) -> str:
    """The error's text, naming files where the user will find them (``input/``), not in work/."""
    if err.file and Path(err.file).is_relative_to(row.work_dir):
        err.file = str(row.outbox_dir / "input" / Path(err.file).relative_to(row.work_dir))
    return err.user_message()


def _free_name(path: Path) -> Path:
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.name} ({n})")
        n += 1
    return candidate


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
