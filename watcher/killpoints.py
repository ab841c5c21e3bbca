"""Kill points: named steps of claim, finish and cross-filesystem copy where a test can kill -9.

The lifecycle calls ``crash(point)`` at each step. The default hook does nothing; the daemon's
entry point builds one from ``$FACEDROP_CRASH_AT`` (tests only): ``point`` kills the process with
SIGKILL the first time that step is reached, ``point#n`` the n-th time. Several points may be
given, comma-separated. The ``child.*`` points are reached in the worker child
(``watcher.child``), and only its first start honours them: the child dies, the daemon lives.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable, Mapping

CRASH_ENV = "FACEDROP_CRASH_AT"
CrashHook = Callable[[str], None]

# Every point the lifecycle reports, in the order a job meets them.
POINTS = (
    "claim.slot",  # work/<slot> made, folder still in the inbox
    "claim.marked",  # cross-fs: source renamed to its claimed name on its own filesystem
    "claim.copied",  # cross-fs: copy staged and fsynced in the work area, not yet renamed
    "claim.renamed",  # cross-fs: copy renamed into place, claimed source still there
    "claim.moved",  # folder (or zip) in the work area, nothing recorded
    "claim.unzipped",  # a claimed zip unpacked in its slot, not recorded
    "claim.reserved",  # outbox folder made, job not recorded
    "claim.enqueued",  # job recorded, status.json not yet written
    "claim.failing",  # a never-ready entry recorded, not yet ended failed
    "run.started",  # attempt counted, status.json not yet written
    "child.probing",  # in a worker child: about to parse a folder that never became ready
    "child.parsed",  # in the worker child: the job folder probed, the pipeline not yet run
    "child.timed",  # in the worker child: verified video and timing written, not yet renamed
    "child.published",  # in the worker child: the video under its final name, not reported
    "run.video",  # the verified video and timing in the outbox, result not recorded
    "finish.recorded",  # result recorded, outbox not yet completed
    "finish.error",  # error.txt written (failed jobs)
    "finish.inputs_copied",  # cross-fs: inputs staged in the outbox, not renamed
    "finish.inputs_moved",  # inputs in input/, source not yet removed
    "finish.published",  # status.json final
)


def no_crash(point: str) -> None:
    """The production hook."""


def crash_hook_from_env(
    environ: Mapping[str, str] = os.environ,
    kill: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGKILL),
) -> CrashHook:
    """A hook killing this process at the points ``$FACEDROP_CRASH_AT`` names (tests only)."""
    spec = environ.get(CRASH_ENV, "").strip()
    if not spec:
        return no_crash
    wanted: dict[str, int] = {}
    for item in spec.split(","):
        name, _, nth = item.strip().partition("#")
        wanted[name] = int(nth) if nth.isdigit() else 1
    seen: Counter[str] = Counter()

    def hook(point: str) -> None:
        if point not in wanted:
            return
        seen[point] += 1
        if seen[point] == wanted[point]:
            kill()

    return hook
