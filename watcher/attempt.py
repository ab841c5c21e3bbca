"""One attempt at one job, for every caller: the local ``Worker``, the fleet's ``FleetWorker``
and ``facedrop run``.

``attempt`` runs the job through a ``Runner`` (normally the supervised worker child of
``watcher.supervisor``: probing and the pipeline never run in the caller's process) and returns
one ``Ending`` with one ``Verdict``. The callers only act on the verdict. Every error becomes a
verdict through one table, ``RULES``, with one user-facing message per rule:

=================  ===========  ============================================================
error              verdict      why
=================  ===========  ============================================================
Cancelled          cancelled    stopped on request (shutdown, a fleet cancel): not counted
environment fault  give back    a full or read-only disk, missing weights: not the job's fault
device missing     give back    the GPU is gone or named wrongly: this machine's problem
InputError         failed       the submitter must change the files; retrying cannot help
worker crashed     retry        a segfault, abort or OOM kill of the child: counted
other errors       retry        counted; after ``max_attempts`` counted attempts: failed
=================  ===========  ============================================================

A device error used to be retried and counted on one machine but handed back uncounted in a
fleet. The rule now is the fleet's, everywhere: a device that cannot be used says nothing about
the job, and counting it would fail every good job that arrives while a GPU is unplugged or
asleep. The job goes back to the queue uncounted and the machine pauses work (``FaultKind``
DEVICE locally, "not taking jobs" on a fleet worker's card) until a later try gets past it.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pipeline.errors import Cancelled, ConfigError, FacedropError, InputError
from pipeline.spec import CancelToken, ProgressFn, TimingRecord
from watcher.config import Config
from watcher.faults import Fault, FaultKind, Places, classify
from watcher.outbox import INPUT

log = logging.getLogger("facedrop.attempt")


class Verdict(StrEnum):
    """How one attempt ended; the only thing a caller acts on."""

    DONE = "done"
    FAILED = "failed"  # the input's fault, or every attempt used: final
    RETRY = "retry"  # counted; run again after a backoff
    GIVE_BACK = "give back"  # not the job's fault: back uncounted, this machine pauses
    CANCELLED = "cancelled"  # stopped on request: back uncounted


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    """One job to run: where its files are and where its results go.

    ``shown_inputs`` is how messages name the job's files: the submitter finds them in the
    outbox folder's ``input/`` (``<out>/input`` locally, a placeholder a fleet's intake
    rewrites), not in the work area the attempt reads them from. ``orphan_status``: the
    ``status.json`` fields the child writes if its parent dies mid-job (``facedrop run``, whose
    outbox folder nobody else would finish); None for the daemons, whose restart reconciles.
    """

    name: str
    source: Path
    out: Path
    config: Config
    shown_inputs: str
    orphan_status: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """What a runner returns for a rendered, verified, published video."""

    video: str
    record: TimingRecord


@dataclass(frozen=True, slots=True)
class Ending:
    """The verdict and what the caller needs to act on it."""

    verdict: Verdict
    message: str = ""  # failed / retry: the error.txt text
    fault: Fault | None = None  # give back: what this machine lacks
    finished: Finished | None = None  # done
    error: BaseException | None = None  # what ended it (``facedrop run`` re-raises it)


class Runner(Protocol):
    """Runs an ``AttemptRequest``: returns ``Finished`` or raises the job's error."""

    def run(self, request: AttemptRequest, progress: ProgressFn, cancel: CancelToken
            ) -> Finished: ...

    def stop_now(self) -> None:
        """Shutdown ran out of time: end the running job at once (it is not counted)."""

    def close(self) -> None: ...


class WorkerCrashed(FacedropError):
    """The worker child died (signal or exit) while running the job."""

    title = "The worker process crashed"

    def __init__(self, exitcode: int | None, doing: str, file: str = "") -> None:
        self.exitcode = exitcode
        self.doing = doing
        super().__init__(f"it {_death(exitcode)} while {doing}", file=file or None,
                         fix=_crash_fix(exitcode, bool(file)))


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was ended by signal {-exitcode}"
        words = {signal.SIGSEGV: "crashed (segmentation fault, SIGSEGV)",
                 signal.SIGABRT: "aborted (SIGABRT)",
                 signal.SIGBUS: "crashed (bus error, SIGBUS)",
                 signal.SIGFPE: "crashed (arithmetic fault, SIGFPE)",
                 signal.SIGILL: "crashed (illegal instruction, SIGILL)",
                 signal.SIGKILL: "was killed (SIGKILL: out of memory, or killed by hand)"}
        return words.get(sig, f"was ended by {sig.name}")
    return f"exited unexpectedly (exit status {exitcode})"


def _crash_fix(exitcode: int | None, named: bool) -> str:
    if exitcode == -signal.SIGKILL:
        return ("if the machine ran out of memory, submit a shorter recording or a smaller "
                "photo, or close other programs")
    if named:
        return ("this file may be damaged or in a form the decoder cannot handle: export it "
                "again as a plain WAV/M4A recording or JPEG/PNG photo and submit the job again")
    return "submit the job again; if it crashes again, send the log to whoever runs facedrop"


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule needs to word its message."""

    request: AttemptRequest
    counted: int
    max_attempts: int
    log_hint: str  # where the details are: local_log_hint or worker_log_hint


def local_log_hint(logs: Path) -> str:
    """Where a failure's details are when the job ran on this machine (the daemon's log)."""
    return f"the log: {logs / 'facedrop.log'}"


def worker_log_hint(ident: str) -> str:
    """Where a failure's details are when a fleet worker ran the job."""
    return f"the log of the worker {ident}."


def given_up(attempts: int, *, stopped: str, fix: str) -> str:
    """error.txt of a job whose every counted attempt was interrupted (``stopped``: who was
    stopped, killed or crashed while running it: the daemon, a worker)."""
    return (
        f"Error: the job was given up after {attempts} attempts: each attempt was interrupted "
        f"before it finished ({stopped} was stopped, killed or crashed while running it).\n"
        f"Fix: {fix}\n"
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: which errors, which verdict, which message."""

    what: str
    matches: Callable[[BaseException], bool]
    verdict: Verdict
    message: Callable[[BaseException, Context], str]


def _user_message(err: BaseException, ctx: Context) -> str:
    assert isinstance(err, FacedropError)
    return _shown(err, ctx.request).user_message()


BUG_DETAIL_MAX = 300  # characters of an unexpected error's text in error.txt (the log has all)


def _bug(err: BaseException, ctx: Context) -> str:
    detail = str(err)
    if len(detail) > BUG_DETAIL_MAX:
        detail = detail[:BUG_DETAIL_MAX] + "..."
    return (f"facedrop failed while making this video ({type(err).__name__}: {detail}).\n"
            f"This is not a problem with your files. The details are in {ctx.log_hint}\n")


def _crashed(err: BaseException, ctx: Context) -> str:
    assert isinstance(err, WorkerCrashed)
    text = _shown(err, ctx.request).user_message()
    return text + f"(attempt {ctx.counted} of at most {ctx.max_attempts})\n"


RULES: tuple[Rule, ...] = (
    Rule("cancelled", lambda e: isinstance(e, Cancelled), Verdict.CANCELLED,
         lambda e, c: "the job was stopped before it finished; it runs again later\n"),
    Rule("input", lambda e: isinstance(e, InputError), Verdict.FAILED, _user_message),
    Rule("crash", lambda e: isinstance(e, WorkerCrashed), Verdict.RETRY, _crashed),
    Rule("facedrop", lambda e: isinstance(e, FacedropError), Verdict.RETRY, _user_message),
    Rule("bug", lambda e: True, Verdict.RETRY, _bug),
)


def machine_fault(err: BaseException, places: Places) -> Fault | None:
    """The fault of this machine behind ``err`` (disk, weights, device), or None."""
    fault = classify(err, places, FaultKind.OUTBOX)
    if fault is None and isinstance(err, ConfigError):
        from pipeline.device import DeviceUnavailableError  # imports torch: only when needed

        if isinstance(err, DeviceUnavailableError):
            fault = Fault(FaultKind.DEVICE, err.problem, err.fix)
    return fault


def judge(err: BaseException, ctx: Context, places: Places,
          check: Callable[[], Fault | None] | None = None) -> Ending:
    """The one mapping from an error to a verdict (see the table above)."""
    if not isinstance(err, Cancelled | InputError | WorkerCrashed):
        fault = machine_fault(err, places)
        if fault is None and check is not None and not isinstance(err, FacedropError):
            # A write that failed inside a library (the encoder on a full disk) may not say
            # so: look at the disks before blaming the job.
            fault = check()
        if fault is not None:
            return Ending(Verdict.GIVE_BACK, fault=fault, error=err)
    rule = next(r for r in RULES if r.matches(err))
    message = rule.message(err, ctx)
    if rule.verdict is Verdict.RETRY:
        if rule.what == "bug":
            log.error("job %s attempt %d failed", ctx.request.name, ctx.counted, exc_info=err)
        if ctx.counted >= ctx.max_attempts:
            return Ending(Verdict.FAILED, message=message, error=err)
    return Ending(rule.verdict, message=message, error=err)


def attempt(runner: Runner, request: AttemptRequest, progress: ProgressFn, cancel: CancelToken,
            *, counted: int, max_attempts: int, places: Places, log_hint: str,
            check: Callable[[], Fault | None] | None = None) -> Ending:
    """Run one attempt of ``request`` (the ``counted``-th counted one) and judge it."""
    try:
        finished = runner.run(request, progress, cancel)
    except Exception as err:
        return judge(err, Context(request, counted, max_attempts, log_hint), places, check)
    return Ending(Verdict.DONE, finished=finished)


def _shown(err: FacedropError, request: AttemptRequest) -> FacedropError:
    """The error naming files where the user will find them (``input/``), not the work area."""
    if err.file and Path(err.file).is_relative_to(request.source):
        err.file = f"{request.shown_inputs}/{Path(err.file).relative_to(request.source)}"
    return err


def shown_inputs(out: Path) -> str:
    """``shown_inputs`` for an outbox folder on this machine."""
    return str(out / INPUT)
