"""Runners for ``watcher.attempt``: the supervised worker child, and in-process for tests.

``ChildRunner`` keeps one worker child (``watcher.child``, started with spawn) alive between jobs
so the models stay loaded. It sends a job, relays the child's progress, passes a cancel request
on, and watches the child's process sentinel: if the child dies (a segfault or abort in a
decoder or a model, an out-of-memory kill) the attempt ends with ``WorkerCrashed`` naming what
the child last said it was doing and the file it was reading, and the next job gets a fresh
child. ``stop_now`` (shutdown out of time) kills the child; that attempt ends ``Cancelled``.
``close`` asks the child to exit and kills it if it does not: no child outlives its parent
(and a parent killed outright closes the pipe, which ends the child too).

``InProcessRunner`` runs the job in the caller's process, for in-process tests whose pipeline
factories are closures that cannot cross into a spawned process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from pipeline.errors import Cancelled
from pipeline.spec import CancelToken, Pipeline, ProgressFn
from watcher.attempt import AttemptRequest, Finished, WorkerCrashed
from watcher.child import child_main, execute_request
from watcher.killpoints import CRASH_ENV, CrashHook, no_crash
from watcher.pipelineref import PipelineRef

log = logging.getLogger("facedrop.supervisor")

PROBED = object()  # the answer to a probe that found nothing wrong
POLL = 0.1  # how often a cancel request is looked at while the child works
EXIT_WAIT = 2.0  # how long a child asked to exit gets before it is killed


class ChildRunner:
    """The parent's side of the worker child."""

    def __init__(self, ref: PipelineRef, *, crash_spec: str | None = None) -> None:
        self._ref = ref
        # Test kill points inside the child (``child.*``) fire in the first child only: a
        # restarted child must be able to finish the job.
        self._crash_spec = (os.environ.get(CRASH_ENV, "") if crash_spec is None
                            else crash_spec)
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._starts = 0
        self._killed = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def _ensure(self) -> tuple[BaseProcess, Connection]:
        with self._lock:
            if self._proc is not None and self._conn is not None and self._proc.is_alive():
                return self._proc, self._conn
            self._reap()
            parent, child = self._ctx.Pipe()
            spec = self._crash_spec if self._starts == 0 else ""
            proc = self._ctx.Process(target=child_main, args=(child, self._ref, spec),
                                     name="facedrop-worker", daemon=True)
            proc.start()
            child.close()  # only the child holds this end: its death is our end of file
            self._starts += 1
            self._proc, self._conn, self._killed = proc, parent, False
            log.info("worker child started (pid %s)", proc.pid)
            return proc, parent

    def start(self) -> None:
        """Start the child now (it would start with the first job)."""
        self._ensure()

    def run(self, request: AttemptRequest, progress: ProgressFn, cancel: CancelToken
            ) -> Finished:
        finished = self._exchange(("job", request), progress, cancel)
        assert isinstance(finished, Finished)
        return finished

    def probe(self, request: AttemptRequest) -> None:
        """Parse the job folder in the child: raises its ``InputError`` (or ``WorkerCrashed``)."""
        self._exchange(("probe", request), lambda stage, fraction: None, CancelToken())

    def _exchange(self, message: tuple[Any, ...], progress: ProgressFn, cancel: CancelToken
                  ) -> Finished | None:
        proc, conn = self._ensure()
        doing: tuple[str, str] = ("starting the job", "")
        try:
            conn.send(message)
        except OSError:
            raise self._death(proc, doing) from None
        told = False
        while True:
            if cancel.cancelled and not told:
                told = True
                try:
                    conn.send(("cancel",))
                except OSError:
                    pass  # the child is gone: the sentinel says so below
            ready = wait([conn, proc.sentinel], POLL)
            if not ready:
                continue
            if conn in ready or conn.poll():
                try:
                    answer = conn.recv()
                except (EOFError, OSError):
                    raise self._death(proc, doing) from None
                result = self._handle(answer, progress)
                if isinstance(result, tuple):
                    doing = result
                elif result is PROBED:
                    return None
                elif isinstance(result, Finished):
                    return result
            elif proc.sentinel in ready:
                raise self._death(proc, doing)

    @staticmethod
    def _handle(message: tuple[Any, ...], progress: ProgressFn
                ) -> tuple[str, str] | Finished | object | None:
        kind = message[0]
        if kind == "probed":
            return PROBED
        if kind == "progress":
            progress(message[1], message[2])
            return f"running the {message[1]} stage", ""
        elif kind == "phase":
            return str(message[1]), str(message[2])
        elif kind == "done":
            finished: Finished = message[1]
            return finished
        elif kind == "error":
            err, text = message[1], message[2]
            if not isinstance(err, Exception):
                err = RuntimeError(repr(err))
            log.debug("the job's error in the worker child:\n%s", text)
            raise err
        return None

    def _death(self, proc: BaseProcess, doing: tuple[str, str]) -> Exception:
        proc.join(5.0)
        if self._killed:  # shutdown killed it on purpose: not the job's doing
            return Cancelled("the job was stopped at shutdown", fix="it will be retried")
        code = proc.exitcode
        log.error("the worker child (pid %s) died (exit status %s) while %s %s", proc.pid,
                  code, doing[0], doing[1])
        return WorkerCrashed(code, doing[0], doing[1])

    def stop_now(self) -> None:
        proc = self._proc
        if proc is not None and proc.is_alive():
            self._killed = True
            proc.kill()

    def close(self) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
            if proc is not None and conn is not None and proc.is_alive():
                try:
                    conn.send(("exit",))
                except OSError:
                    pass
                proc.join(EXIT_WAIT)
                if proc.is_alive():
                    self._killed = True
                    proc.kill()
            self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.join(5.0)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None


class InProcessRunner:
    """Runs the job in this process (tests with closure factories; no isolation)."""

    def __init__(self, factory: Any, *, crash: CrashHook = no_crash) -> None:
        self._factory = factory
        self._crash = crash
        self._pipeline: Pipeline | None = None

    def run(self, request: AttemptRequest, progress: ProgressFn, cancel: CancelToken
            ) -> Finished:
        if self._pipeline is None:
            self._pipeline = self._factory(request.config)  # models stay loaded between jobs
        return execute_request(request, self._pipeline, progress, cancel, self._crash)

    def start(self) -> None:
        """Nothing to start."""

    def stop_now(self) -> None:
        """A thread cannot be stopped; the caller requeues the job and leaves it."""

    def close(self) -> None:
        self._pipeline = None


def make_runner(factory: Any) -> ChildRunner | InProcessRunner:
    """The worker child for a named pipeline; in-process for anything else."""
    if isinstance(factory, PipelineRef):
        return ChildRunner(factory)
    return InProcessRunner(factory)
