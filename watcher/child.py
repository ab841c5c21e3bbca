"""The worker child: the process where a job is probed and rendered, models resident.

Started by ``watcher.supervisor`` with multiprocessing's *spawn* (a fresh interpreter: no
inherited MPS/CUDA or Objective-C state, which fork would corrupt). It serves jobs one at a time
over a pipe. Before each risky step it tells its parent what it is doing and which file it
reads (``pipeline.media.phase``), so if a decoder or a model kills it, the parent can say what
crashed. It stops when its parent does: the pipe reaches end of file, and the child exits at
once (for ``facedrop run`` it first marks the job's ``status.json`` failed, since no one else
would). SIGINT and SIGHUP are the parent's to handle; SIGTERM cancels the running job.

Messages child -> parent: ``("phase", doing, file)``, ``("progress", stage, fraction)``,
``("done", Finished)``, ``("error", exception, traceback text)``.
Parent -> child: ``("job", AttemptRequest)``, ``("probe", AttemptRequest)`` (only parse the
job folder: the daemon's explanation of a folder that never became ready), ``("cancel",)``,
``("exit",)``; a probe is answered ``("probed", None)`` or ``("error", ...)``.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import threading
import traceback
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from pipeline.media import phase
from pipeline.spec import CancelToken, Pipeline
from watcher.attempt import AttemptRequest, Finished
from watcher.killpoints import CRASH_ENV, CrashHook, crash_hook_from_env, no_crash
from watcher.logs import FORMAT, ROOT_LOGGER
from watcher.pipelineref import PipelineRef

log = logging.getLogger("facedrop.child")

_EXIT = object()


class ChildError(RuntimeError):
    """An error from the child that could not cross the pipe as itself."""


def execute_request(request: AttemptRequest, pipeline: Pipeline,
                    progress: Any, cancel: CancelToken, crash: CrashHook = no_crash) -> Finished:
    """Probe the job folder and render it into ``request.out`` (in whichever process runs it)."""
    from watcher.execute import execute_job
    from watcher.jobfolder import parse_job_folder
    from watcher.outbox import Outbox

    parsed = parse_job_folder(request.source, request.config, request.name)
    crash("child.parsed")
    phase.doing("rendering the video")
    result = execute_job(parsed, request.out, Outbox(request.out.parent), pipeline, progress,
                         cancel, crash=crash)
    return Finished(result.video.name, result.record)


class _Link:
    """The child's end of the pipe; sends from any thread."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self._lock:
            self.conn.send(message)


def child_main(conn: Connection, ref: PipelineRef, crash_spec: str) -> None:
    """The child's entry point (a module-level function: spawn pickles it by name)."""
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    # to stderr, which the daemon's service log keeps: facedrop's own notes (a compile and its
    # cost) as well as every library's warnings
    logging.getLogger(ROOT_LOGGER).setLevel(logging.INFO)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    link = _Link(conn)
    crash = crash_hook_from_env({CRASH_ENV: crash_spec}) if crash_spec else no_crash
    jobs: queue.Queue[Any] = queue.Queue()
    current: list[tuple[CancelToken, AttemptRequest]] = []

    def on_term(signum: int, frame: FrameType | None) -> None:
        for token, _request in current:
            token.cancel()

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=_listen, args=(link, jobs, current), name="parent",
                     daemon=True).start()
    phase.set_reporter(lambda doing, file: link.send("phase", doing, file))
    pipeline: Pipeline | None = None
    while (item := jobs.get()) is not _EXIT:
        if isinstance(item, tuple):  # ("probe", request): only read the job folder
            _probe(link, item[1], crash)
            continue
        request: AttemptRequest = item
        token = CancelToken()
        current[:] = [(token, request)]
        try:
            if pipeline is None:
                link.send("phase", "loading the pipeline", "")
                pipeline = ref(request.config)  # models stay loaded between jobs
            link.send("phase", "checking the job's files", str(request.source))

            def progress(stage: str, fraction: float) -> None:
                link.send("progress", stage, fraction)

            finished = execute_request(request, pipeline, progress, token, crash)
        except Exception as err:
            link.send("error", _portable(err), traceback.format_exc())
        else:
            link.send("done", finished)
        finally:
            current.clear()


def _probe(link: _Link, request: AttemptRequest, crash: CrashHook) -> None:
    """Why a job folder cannot run (the parser's error), or ("probed", None) if it can."""
    from watcher.jobfolder import parse_job_folder

    try:
        crash("child.probing")
        parse_job_folder(request.source, request.config, request.name)
    except Exception as err:
        link.send("error", _portable(err), traceback.format_exc())
    else:
        link.send("probed", None)


def _listen(link: _Link, jobs: queue.Queue[Any], current: list[tuple[CancelToken, Any]]
            ) -> None:
    """Read the parent's messages; the pipe's end means the parent is gone."""
    while True:
        try:
            message = link.conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "job":
            jobs.put(message[1])
        elif message[0] == "probe":
            jobs.put(message)
        elif message[0] == "cancel":
            for token, _request in current:
                token.cancel()
        elif message[0] == "exit":
            jobs.put(_EXIT)
            return
    # The parent died (kill -9, a crash): no one will collect this job. A daemon's restart
    # reconciles it; ``facedrop run`` has no restart, so its status.json is finished here.
    for _token, request in current:
        if request.orphan_status is not None:
            _orphaned(request)
    os._exit(1)


def _orphaned(request: AttemptRequest) -> None:
    from watcher.outbox import Outbox, remove_partials

    message = ("Error: facedrop run was stopped before the job finished.\n"
               "Fix: run the job again.\n")
    try:
        outbox = Outbox(request.out.parent)
        remove_partials(request.out)
        outbox.write_error(request.out, message)
        fields = dict(request.orphan_status or {})
        fields["error"] = message.splitlines()[0]
        outbox.write_status(request.out, "failed", **fields)
    except OSError:
        pass  # nothing else can be done from here


def _portable(err: BaseException) -> BaseException:
    """``err`` if it survives pickling (FacedropErrors, OSErrors do), else a ``ChildError``."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return ChildError(f"{type(err).__name__}: {err}")
    return err

