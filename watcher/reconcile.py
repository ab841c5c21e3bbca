"""On start: make the queue, the work area and the outbox agree again after a kill.

Temp files and staging folders are swept; a job the queue still calls running was interrupted,
so it is retried (with backoff), given up after ``max_attempts``, or, if its video was already
verified and published, recorded as done instead of run again. Every finished job's outbox is
completed (error.txt, input/, status.json) and every queued job's ``status.json`` rewritten if it
disagrees. An outbox folder no job owns and nothing is in was reserved by a claim a kill cut
short: it is removed, so the job's adoption gets the name back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from watcher.attempt import given_up
from watcher.filetree import remove_tree, subdirs
from watcher.jobqueue import Job, JobState
from watcher.lifecycle import Lifecycle, Outcome
from watcher.outbox import INPUT, RESOLVED, TIMING, is_litter
from watcher.worker import retry_delay

log = logging.getLogger("facedrop.reconcile")


@dataclass(slots=True)
class Report:
    """What reconciliation changed (for the log and the tests)."""

    swept: list[Path] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    recovered_done: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)


def reconcile(
    lifecycle: Lifecycle,
    *,
    max_attempts: int,
    backoff: float,
    log_path: Path,
    clock: Callable[[], float],
) -> Report:
    """Bring queue, work area and outbox in line; safe to run again at any point."""
    report = Report()
    outbox, work = lifecycle.outbox, lifecycle.work_dir
    report.swept += _sweep(outbox.root) + _sweep(work)
    jobs = lifecycle.queue.list(limit=None)
    for job in jobs:
        if job.state is JobState.RUNNING:
            _interrupted(lifecycle, job, max_attempts, backoff, log_path, clock, report)
        elif job.state is JobState.QUEUED and job.counted >= max_attempts:
            _fail(lifecycle, job, _give_up(job, log_path), report)
    for job in lifecycle.queue.list(limit=None):
        lifecycle.settle(job)
    owned = {job.outbox for job in jobs}
    for folder in subdirs(outbox.root):
        if folder.name not in owned and not any(folder.iterdir()):
            folder.rmdir()
            report.orphans.append(folder)
    for slot in subdirs(work):
        if not any(slot.iterdir()):
            slot.rmdir()
    if report.retried or report.given_up or report.recovered_done or report.orphans:
        log.warning("reconciled after an interruption: %s", report)
    return report


def _interrupted(lifecycle: Lifecycle, job: Job, max_attempts: int, backoff: float,
                 log_path: Path, clock: Callable[[], float], report: Report) -> None:
    folder = lifecycle.outbox.folder(job.outbox)
    published = _published_video(folder)
    if published is not None:  # killed after the video was verified: it is done, not rerun
        lifecycle.transition(job.id, JobState.DONE, Outcome(video=published[0],
                                                            realtime_factor=published[1]))
        report.recovered_done.append(job.name)
    elif not lifecycle.payload_path(job).exists() and not (folder / INPUT).exists():
        message = (
            "Error: the job's files were removed from facedrop's work area while it ran.\n"
            f"Fix: submit the job again. Details are in the log: {log_path}\n"
        )
        _fail(lifecycle, job, message, report)
    elif job.counted >= max_attempts:
        _fail(lifecycle, job, _give_up(job, log_path), report)
    else:
        log.warning("job %d (%s) was interrupted; it will be retried", job.id, job.name)
        lifecycle.transition(job.id, JobState.QUEUED, Outcome(
            detail="interrupted", not_before=clock() + retry_delay(backoff, job.counted)))
        report.retried.append(job.name)


def _fail(lifecycle: Lifecycle, job: Job, error: str, report: Report) -> None:
    lifecycle.transition(job.id, JobState.FAILED, Outcome(error=error))
    report.given_up.append(job.name)


def _give_up(job: Job, log_path: Path) -> str:
    return given_up(job.counted, stopped="the daemon",
                    fix=f"check the log for what stopped it, then submit the job again: {log_path}")


def _published_video(folder: Path) -> tuple[str, float] | None:
    """(video name, realtime factor) if an attempt verified and published its video.

    The video takes its final name only after it was verified and its timing written
    (``watcher.execute``), so the final name alone proves it; the timing may be missing only
    for a folder an older version left, and the realtime factor is then unknown (0).
    """
    try:
        resolved = yaml.safe_load((folder / RESOLVED).read_text(encoding="utf-8"))
        video = str(resolved["output"])
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return None
    if "/" in video or not (folder / video).is_file():
        return None
    try:
        timing = json.loads((folder / TIMING[0]).read_text(encoding="utf-8"))
        factor = float(timing.get("realtime_factor", 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        factor = 0.0
    return video, factor


def _sweep(root: Path) -> list[Path]:
    """Temp files and staging folders in ``root`` and its folders (two levels: jobs, slots)."""
    swept = []
    for parent in [root, *subdirs(root)]:
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for path in entries:
            if is_litter(path.name):
                remove_tree(path)
                swept.append(path)
    return swept
