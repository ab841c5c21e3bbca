"""Cancel, retry and delete: one function each, for the CLI verbs and the studio page alike.

Jobs are found through ``watcher.status`` (the one reader of the queue) and the outbox's
``status.json``; state changes are asked of the daemon (cancel) or made in the inbox and outbox,
which the daemon reconciles with (retry submits the job's own files again; delete removes a
finished job's outbox folder, which reconciliation leaves alone).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError
from watcher.cancels import CancelRequests
from watcher.config import Config, QueueBackend
from watcher.outbox import INPUT, read_status
from watcher.status import status_report
from watcher.submit import resubmit

FINISHED = ("done", "failed")


@dataclass(frozen=True, slots=True)
class Acted:
    """What an action did, in words for the CLI and the page."""

    name: str
    message: str


def cancel_job(config: Config, job: str) -> list[Acted]:
    """Ask to stop a queued or running job, found by its name or outbox folder name."""
    if config.queue.backend is QueueBackend.REDIS:
        return _cancel_fleet(config, job)
    report = status_report(config.paths.state, config.paths.inbox, 0)
    jobs = report["jobs"] or {"running": [], "queued": []}
    found = [j for j in jobs["running"] + jobs["queued"] if job in (j["name"], j["outbox"])]
    if not found:
        raise InputError(f"no queued or running job called {job!r}",
                         fix="see 'facedrop status' for the queued and running jobs")
    if not report["daemon"]["running"]:
        raise InputError("the daemon is not running, so nothing can stop the job now",
                         fix="start it (facedrop watch) and cancel again")
    requests = CancelRequests(config.paths.state)
    for j in found:
        requests.request(int(j["id"]))
    return [Acted(j["name"], f"cancelling {j['name']} (outbox folder {j['outbox']})")
            for j in found]


def _cancel_fleet(config: Config, job: str) -> list[Acted]:
    from watcher.fleet.ledger import Ledger

    ledger = Ledger.open(config.queue)
    found = ledger.find(job)
    if not found:
        raise InputError(f"no queued or running job called {job!r}",
                         fix="see 'facedrop status' for the jobs in the fleet")
    acted = []
    for key, name, outbox in found:
        ledger.request_cancel(key)
        acted.append(Acted(name, f"cancelling {name} (outbox folder {outbox})"))
    return acted


def finished_folder(config: Config, folder_name: str) -> tuple[Path, dict[str, object]]:
    """A finished job's outbox folder (a plain name inside the outbox) and its status."""
    outbox = config.paths.outbox
    if not folder_name or folder_name != Path(folder_name).name or folder_name.startswith("."):
        raise InputError(f"{folder_name!r} is not an outbox folder name",
                         fix="give the job's folder name as 'facedrop status' lists it")
    folder = outbox / folder_name
    if folder.is_symlink() or not folder.is_dir():
        raise InputError(f"there is no outbox folder called {folder_name!r}", file=outbox)
    status = read_status(folder)
    if status is None or status.get("state") not in FINISHED:
        raise InputError(f"{folder_name!r} has not finished",
                         fix="cancel it first (facedrop cancel), or wait until it ends",
                         file=folder)
    return folder, status


def retry_job(config: Config, folder_name: str) -> Acted:
    """Submit a failed job's own files (its outbox ``input/``) to the inbox again."""
    folder, status = finished_folder(config, folder_name)
    if status.get("state") != "failed":
        raise InputError(f"{folder_name!r} did not fail, so there is nothing to retry",
                         fix="submit it again yourself if you want another video")
    source = folder / INPUT
    if source.is_symlink() or not source.is_dir():
        raise InputError(f"{folder_name!r} has no input/ folder to submit again", file=folder)
    name = str(status.get("job") or folder_name)
    dest = resubmit(config, name, source)
    return Acted(name, f"submitted {name} again as {dest.name}")


def delete_result(config: Config, folder_name: str) -> Acted:
    """Remove a finished job's outbox folder (renamed away first, so it vanishes at once)."""
    folder, _ = finished_folder(config, folder_name)
    doomed = folder.parent / f".deleting-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return Acted(folder_name, f"deleted the outbox folder {folder_name}")
