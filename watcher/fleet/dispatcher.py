"""The intake's side of a fleet: send claimed jobs to Redis, collect committed results.

It is the fleet's ``Executor`` (``watcher.executor``), where the local ``Worker`` stands in
the daemon (``poll`` from the watch loop), and never runs a job. Each round, for the jobs
the local record holds as QUEUED or RUNNING:

1. an unsent job's files go to storage by sha256 (already stored: not uploaded again), then a
   Dramatiq message with the job's key, name and hashes, then the key is marked sent (a kill
   between send and mark sends it twice: workers drop the duplicate);
2. a committed result finishes the job through the ``Lifecycle`` (result files fetched into the
   outbox, timing.json last, then the transition), and the job's Redis keys are retired;
3. a worker's progress moves the job to RUNNING (with the worker's attempt number) and into
   ``status.json``; a job its worker gave back (shutdown, a worker fault) is QUEUED again;
4. a cancel asked for a job no live worker holds is committed here, as the job's result.

Every step is idempotent, so a kill of the intake at any point is repaired by the next round
after restart. Redis or storage unreachable: a ``FLEET`` fault pauses intake and dispatch; its probe
(``reachable``) keeps new jobs in the inbox until Redis answers again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import dramatiq

from watcher.cancels import CANCELLED_MESSAGE
from watcher.config import Config
from watcher.faults import Fault, FaultBoard, FaultKind, Places, Scope, classify
from watcher.fleet.broker import BROKER_ERRORS, QUEUE, job_message, make_broker
from watcher.fleet.ledger import Ledger
from watcher.fleet.messages import (
    OUTBOX_MARK,
    JobMessage,
    Manifest,
    Verdict,
    commit,
    read_manifest,
)
from watcher.jobqueue import Job, JobQueue, JobState
from watcher.killpoints import CrashHook, no_crash
from watcher.lifecycle import Lifecycle, Outcome
from watcher.outbox import TEMP_SUFFIX
from watcher.storage import Storage, StorageError, open_storage

log = logging.getLogger("facedrop.fleet")


def job_key(job: Job) -> str:
    """The job's fleet key: its work-area slot (unique per claim, hex digits)."""
    return job.payload.partition("/")[0]


def where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


class Dispatcher:
    """The fleet's ``Executor``: sends and collects jobs; ``poll`` is called from the daemon
    loop."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        config: Config,
        faults: FaultBoard,
        places: Places,
        *,
        storage: Callable[[], Storage] | None = None,
        clock: Callable[[], float] = time.time,
        crash: CrashHook = no_crash,
    ) -> None:
        self._lifecycle = lifecycle
        self._record: JobQueue = lifecycle.queue  # read here; written through the lifecycle
        self._config = config
        self._faults = faults
        self._places = places
        self._open_storage = storage or (lambda: open_storage(config))
        self._clock = clock
        self._crash = crash
        self._ledger: Ledger | None = None
        self._broker: dramatiq.Broker | None = None
        self._storage: Storage | None = None
        self._shown: dict[int, tuple[int, str, str]] = {}
        self._pending = False
        self._scratch = lifecycle.work_dir  # temp files (swept as litter after a kill)
        self.on_idle: Callable[[], None] = lambda: None

    # ---- the daemon's Executor (watcher.executor) ---------------------------------------
    def adopt(self) -> None:
        """After a restart: jobs the record left RUNNING are still in the fleet, not crashed.

        They go back to QUEUED without counting (reconciliation would count them as
        interrupted); the next progress or result moves them on again.
        """
        for job in self._record.list(JobState.RUNNING):
            self._lifecycle.transition(job.id, JobState.QUEUED, Outcome(
                detail="intake restarted; the job is still in the fleet", counted=False))

    def poll(self, stopping: bool) -> bool:
        """One round (see the module docstring); True while jobs are out in the fleet."""
        if self._faults.blocked(Scope.WORK):
            return True
        try:
            self._round(stopping)
        except BROKER_ERRORS as err:
            self._close()
            self._faults.report(Fault(
                FaultKind.FLEET,
                f"the Redis server at {where(self._config.queue.url)} cannot be reached "
                f"({err}); new jobs stay in the inbox until it is back",
                "start Redis (brew services start redis, or systemctl start redis-server) or "
                "fix queue.url in the config",
            ))
            return True
        except StorageError as err:
            self._faults.report(Fault(FaultKind.FLEET, f"shared storage: {err.problem}", err.fix))
            return True
        except Exception as err:
            fault = classify(err, self._places, FaultKind.FLEET)
            if fault is None:
                raise
            self._faults.report(fault)
            return True
        self._faults.resolve(FaultKind.FLEET)
        return self._pending

    def reachable(self) -> bool:
        """The FLEET fault's probe: does Redis answer now (within a second)? Until it does, the
        intake leaves new jobs in the inbox: claimed, they could only wait in the work area."""
        ledger = Ledger.open(self._config.queue, quick=True)
        try:
            return ledger.ping()
        except BROKER_ERRORS:
            return False
        finally:
            ledger.close()

    def waiting(self) -> bool:
        return self._pending or bool(self._record.list(JobState.QUEUED, limit=1))

    def stop_job(self, job_id: int) -> None:
        """Not used: a fleet's cancels go through Redis (``Ledger.request_cancel``)."""

    def cancel(self) -> None:
        """Shutdown: nothing runs here; fleet jobs carry on and are collected after restart."""

    def shutdown(self, deadline: float) -> None:
        self._close()
        storage, self._storage = self._storage, None
        if storage is not None:
            storage.close()

    # ---- one round -------------------------------------------------------------------------
    def _connect(self) -> tuple[Ledger, dramatiq.Broker, Storage]:
        if self._ledger is None or self._broker is None:
            q = self._config.queue
            self._ledger = Ledger.open(q)
            self._broker = make_broker(
                q, retry_backoff_seconds=self._config.daemon.retry_backoff_seconds)
            self._broker.declare_queue(QUEUE)
        if self._storage is None:
            self._storage = self._open_storage()
        self._ledger.ping()
        return self._ledger, self._broker, self._storage

    def _close(self) -> None:
        broker, self._broker, self._ledger = self._broker, None, None
        if broker is not None:
            try:
                broker.close()
            except Exception:  # closing a broken connection: nothing to keep
                log.debug("closing the broker", exc_info=True)

    def _round(self, stopping: bool) -> None:
        ledger, broker, storage = self._connect()
        jobs = self._record.list(JobState.QUEUED, JobState.RUNNING, limit=None)
        self._pending = bool(jobs)
        if not jobs:
            return
        keys = [job_key(j) for j in jobs]
        if not stopping:
            unsent = set(ledger.unsent(keys))
            for job in (j for j in jobs if job_key(j) in unsent):
                self._send(job, ledger, broker, storage)
        progress = ledger.progress_of(keys)
        cancels = ledger.cancelled(keys)
        for job, key in zip(jobs, keys, strict=True):
            got = storage.committed(key)
            if got is not None:
                manifest = read_manifest(storage, key, got[0], self._scratch)
                self._finish(job, got[0], manifest, ledger, storage)
                continue
            if key in progress:
                self._mirror(job, progress[key])
            elif job.state is JobState.RUNNING:  # its worker gave it back: waiting again
                self._lifecycle.transition(job.id, JobState.QUEUED, Outcome(
                    detail="given back by its worker", counted=False))
                self._shown.pop(job.id, None)
            if key in cancels and not ledger.owner_alive(key):
                commit(storage, key, ledger.next_attempt(key),
                       Manifest(Verdict.FAILED, "intake", error=CANCELLED_MESSAGE), {},
                       self._scratch)
                log.info("job %s cancelled before a worker took it", job.name)

    def _send(self, job: Job, ledger: Ledger, broker: dramatiq.Broker, storage: Storage) -> None:
        key = job_key(job)
        source = self._lifecycle.payload_path(job)
        files = {rel: storage.put_blob(path) for rel, path in _files(source)}
        self._crash("fleet.uploaded")
        ledger.register(key, job.name, job.outbox)
        broker.enqueue(job_message(JobMessage(key, job.name, files).to_json()))
        self._crash("fleet.sent")
        ledger.mark_sent(key)
        log.info("job %s sent to the fleet (%d files)", job.name, len(files))

    def _mirror(self, job: Job, progress: dict[str, str]) -> None:
        attempt = int(progress.get("attempt", "0") or 0)
        if attempt <= 0:
            return
        worker = progress.get("worker", "")
        if job.state is JobState.QUEUED or job.attempts != attempt:
            job = self._lifecycle.started(job.id, attempt, f"attempt {attempt} on {worker}")
        stage, fraction = progress.get("stage", ""), float(progress.get("progress", "0") or 0)
        shown = (attempt, stage, f"{fraction:.4f}")
        if self._shown.get(job.id) != shown:
            self._lifecycle.progress(job, stage or "starting", fraction)
            self._shown[job.id] = shown

    def _finish(self, job: Job, attempt: int, manifest: Manifest, ledger: Ledger,
                storage: Storage) -> None:
        """Fetch the committed result into the outbox and make the transition; repeatable."""
        key = job_key(job)
        job = self._lifecycle.started(job.id, attempt, f"result of attempt {attempt} "
                                                       f"from {manifest.worker}")
        folder = self._lifecycle.outbox.folder(job.outbox)
        if manifest.verdict is Verdict.DONE:
            self._lifecycle.outbox.begin_attempt(folder)
            for name in manifest.fetch_order():
                temp = folder / f".{name}.fetch{TEMP_SUFFIX}"  # swept as litter if killed here
                storage.get_result(key, attempt, name, temp)
                os.replace(temp, folder / name)
            self._crash("fleet.fetched")
            self._lifecycle.transition(job.id, JobState.DONE, Outcome(
                video=manifest.video, realtime_factor=manifest.realtime_factor,
                total=manifest.total))
        else:
            error = manifest.error.replace(OUTBOX_MARK, str(folder))
            self._lifecycle.transition(job.id, JobState.FAILED, Outcome(error=error))
        self._crash("fleet.finished")
        ledger.retire(key)
        storage.discard(key)
        self._shown.pop(job.id, None)


def _files(source: Path) -> list[tuple[str, Path]]:
    """The job folder's regular files (links to files inside it too), relative paths sorted."""
    found: list[tuple[str, Path]] = []
    root = source.resolve()
    for dirpath, _dirs, names in os.walk(source):
        for name in names:
            path = Path(dirpath) / name
            try:
                real = path.resolve()
            except OSError:
                continue
            if real.is_file() and real.is_relative_to(root):
                found.append((path.relative_to(source).as_posix(), path))
    return sorted(found)
