"""What ``facedrop status`` reports, as plain data: the one reader of the daemon's state.

``facedrop status --json`` prints ``status_report``; the studio page (``watcher.studio``) calls the
same function with a page of results, so there is no second reader of SQLite or Redis. Every
list is bounded (``recent``/``before``, ``inbox_limit``): the cost of a report does not grow with
the number of past jobs.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from watcher.config import Config
from watcher.daemon import WORK, running_daemon_pid
from watcher.estimate import job_estimate
from watcher.jobqueue import Job, JobState
from watcher.outbox import first_line, read_quality
from watcher.rates import RateStore
from watcher.runtime import MAX_ENTRIES, read_runtime
from watcher.sqlite_queue import DB_NAME, SqliteQueue

QUEUE_LIMIT = 1000  # queued jobs listed; more still run, the report says how many it shows


def status_report(state: Path, inbox: Path, recent: int, outbox: Path | None = None, *,
                  before: int | None = None, inbox_offset: int = 0,
                  inbox_limit: int | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data; with the ``outbox``, each done job's quality
    verdict. ``recent`` finished jobs, newest first, with ids below ``before`` if given (the
    ``jobs.more`` entry names the next page's ``before``); ``inbox_offset`` and
    ``inbox_limit`` page the inbox entries (``inbox_total`` counts them all, ``inbox_unlisted``
    those the daemon counts without listing them)."""
    pid = running_daemon_pid(state)
    runtime = read_runtime(state) if pid else None
    unlisted = 0
    if runtime is not None:
        inbox_entries = runtime.get("inbox", [])
        paused = runtime.get("paused", [])
        unlisted = int(runtime.get("inbox_more", 0))  # the daemon lists the first few hundred
    else:  # no daemon: say what is there, and that nobody is claiming it
        names = inbox_names(inbox)
        inbox_entries = [
            {"name": name, "verdict": "waiting", "reason": "the daemon is not running"}
            for name in names[:MAX_ENTRIES]
        ]
        unlisted = max(0, len(names) - MAX_ENTRIES)
        paused = []
    end = None if inbox_limit is None else inbox_offset + inbox_limit
    return {
        "daemon": {"running": bool(pid), "pid": pid},
        "paused": paused,
        "inbox": inbox_entries[inbox_offset:end],
        "inbox_total": len(inbox_entries) + unlisted,
        "inbox_unlisted": unlisted,
        "inbox_more": unlisted,  # entries not listed (the list stops at MAX_ENTRIES)
        "jobs": _with_quality(_jobs(state, recent, before), outbox),
    }


def config_status(config: Config, recent: int, **page: Any) -> dict[str, Any]:
    """``status_report`` for a config, with the fleet's worker cards in fleet mode."""
    from watcher.commands.fleet import fleet_fault, worker_cards

    report = status_report(config.paths.state, config.paths.inbox, recent,
                           outbox=config.paths.outbox, **page)
    fleet = worker_cards(config)
    if fleet is not None:
        report["fleet"] = fleet
        seen = fleet_fault(fleet)
        if seen is not None and not any(p["kind"] == "fleet" for p in report["paused"]):
            report["paused"].append(seen)
    return report


def inbox_names(inbox: Path) -> list[str]:
    try:
        return sorted(p.name for p in inbox.iterdir() if not p.name.startswith("."))
    except OSError:
        return []


def _with_quality(jobs: dict[str, list[dict[str, Any]]], outbox: Path | None
                  ) -> dict[str, list[dict[str, Any]]]:
    """Each finished job gets ``quality``: its verdict from the outbox, or None."""
    for job in jobs["finished"]:
        job["quality"] = (read_quality(outbox / job["outbox"])
                          if outbox is not None and job["state"] == "done" else None)
    return jobs


def job_data(job: Job, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state.value,
        "attempts": job.attempts,
        "stage": job.stage,
        "progress": job.progress,
        "outbox": job.outbox,
        "error": first_line(job.error),
        "seconds": round((job.finished_at or now) - (job.started_at or job.claimed_at), 3),
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _no_jobs() -> dict[str, list[dict[str, Any]]]:
    """``jobs`` before the daemon made its database: the same shape, every list empty."""
    return {"running": [], "queued": [], "finished": [], "more": []}


def _jobs(state: Path, recent: int, before: int | None = None
          ) -> dict[str, list[dict[str, Any]]]:
    if not (state / DB_NAME).is_file():
        return _no_jobs()
    try:
        queue = SqliteQueue(state, readonly=True)
    except sqlite3.Error:
        return _no_jobs()
    try:
        now = time.time()
        # One more than asked: whether a next page exists, without counting the history.
        finished = queue.list(JobState.DONE, JobState.FAILED, limit=recent + 1,
                              newest_first=True, before=before)
        rates = RateStore(state)
        return {
            "running": [with_time_left(job_data(j, now),
                                       job_estimate(state / WORK / j.payload, rates))
                        for j in queue.list(JobState.RUNNING)],
            "queued": [{**job_data(j, now),
                        "estimate": job_estimate(state / WORK / j.payload, rates)}
                       for j in queue.list(JobState.QUEUED, limit=QUEUE_LIMIT)],
            "finished": [job_data(j, now) for j in finished[:recent]],
            "more": [{"before": finished[recent - 1].id}] if len(finished) > recent > 0 else [],
        }
    except sqlite3.OperationalError as err:
        if "no such table" not in str(err):
            raise
        return _no_jobs()  # the daemon is creating its database right now
    finally:
        queue.close()


def with_time_left(job: dict[str, Any], estimate: dict[str, Any]) -> dict[str, Any]:
    """A running job's estimate and the time left by it (never below zero: an overrun says
    "any moment now" rather than a negative time)."""
    job["estimate"] = estimate
    if "seconds" in estimate:
        job["left_seconds"] = round(max(0.0, estimate["seconds"] - job["seconds"]), 1)
    return job
