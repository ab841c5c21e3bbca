"""``facedrop worker`` (a fleet's, queue.backend redis) and ``facedrop cancel`` (any queue)."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import replace
from types import FrameType
from typing import Any

from rich.console import Console

from pipeline.device import is_device_name
from pipeline.errors import ConfigError, InputError
from watcher.config import Config, QueueBackend, as_worker, load_config
from watcher.console import make_console
from watcher.logs import FORMAT as LOG_FORMAT

log = logging.getLogger("facedrop.fleet")

REDIS_FIX = ("start Redis (brew services start redis, or systemctl start redis-server) or fix "
             "queue.url in the config")
NEEDS_REDIS = "set queue.backend: redis and queue.url in the config (README: Several machines)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker`` and ``cancel``."""
    worker = sub.add_parser("worker", help="run jobs from the fleet's Redis queue (one per GPU)")
    worker.add_argument("--device", default=None,
                        help="the device to run on: cpu, mps, cuda or cuda:N (default: config)")
    worker.set_defaults(func=cmd_worker)

    cancel = sub.add_parser("cancel",
                            help="cancel a queued or running job (in a fleet, on any machine)")
    cancel.add_argument("job", metavar="JOB", help="the job's name or outbox folder name")
    cancel.set_defaults(func=cmd_cancel)


def fleet_config(config: Config) -> Config:
    if config.queue.backend is not QueueBackend.REDIS:
        raise ConfigError("this command needs a fleet: queue.backend is local", fix=NEEDS_REDIS)
    return config


def cmd_worker(args: argparse.Namespace) -> int:
    """``facedrop worker``: take jobs one at a time until SIGTERM/SIGINT."""
    from watcher.daemon import pipeline_factory
    from watcher.fleet.ledger import Ledger
    from watcher.fleet.outage import BrokerNoise
    from watcher.fleet.runner import FleetWorker
    from watcher.killpoints import crash_hook_from_env
    from watcher.sdnotify import ServiceNotifier
    from watcher.storage import open_storage

    config = as_worker(fleet_config(load_config(args.config)))
    if args.device:
        if not is_device_name(args.device):
            raise InputError(f"--device {args.device!r} is not a device",
                             fix="use cpu, mps, cuda or cuda:N")
        config = replace(config, pipeline=replace(config.pipeline, device=args.device))
    ledger = Ledger.open(config.queue)
    service = ServiceNotifier.from_environ()  # silent unless systemd started us (Type=notify)
    worker = FleetWorker(config, pipeline_factory(), ledger, open_storage(config),
                         crash=crash_hook_from_env(), service=service)
    _log_to_stderr(BrokerNoise(worker.outage))

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info("worker %s starting", worker.ident)
    try:
        return worker.serve()
    finally:
        service.close()


def _log_to_stderr(noise: logging.Filter) -> None:
    handler = logging.StreamHandler()  # launchd keeps stderr in the worker's log file
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(noise)  # Dramatiq's per-retry connection errors: one line per outage
    logging.getLogger("facedrop").addHandler(handler)
    logging.getLogger("facedrop").setLevel(logging.INFO)
    logging.getLogger("dramatiq").addHandler(handler)
    logging.getLogger("dramatiq").setLevel(logging.WARNING)


def cmd_cancel(args: argparse.Namespace) -> int:
    """``facedrop cancel JOB``: ask whichever process or machine holds the job to stop it."""
    from watcher.actions import cancel_job

    for acted in cancel_job(load_config(args.config), args.job):
        make_console().print(acted.message, highlight=False, markup=False)
    return 0


def worker_cards(config: Config) -> dict[str, Any] | None:
    """``facedrop status``: the live workers' cards, or why they cannot be read (no fleet: None)."""
    if config.queue.backend is not QueueBackend.REDIS:
        return None
    from watcher.fleet.broker import BROKER_ERRORS
    from watcher.fleet.ledger import Ledger

    ledger = Ledger.open(config.queue, quick=True)  # status answers within a second
    try:
        return {"workers": ledger.workers(), "error": "", "reachable": True}
    except BROKER_ERRORS as err:
        return {"workers": [], "error": f"the Redis server cannot be reached ({err})",
                "reachable": False}
    finally:
        ledger.close()


def fleet_fault(fleet: dict[str, Any]) -> dict[str, str] | None:
    """The paused line ``status`` shows at once when it cannot reach Redis itself (the daemon
    may take seconds to notice); None when Redis answered."""
    if fleet.get("reachable", True):
        return None
    return {"kind": "fleet", "reason": f"{fleet['error']}; new jobs stay in the inbox until "
            "it is back", "fix": REDIS_FIX}


def print_workers(console: Console, fleet: dict[str, Any]) -> None:
    """One line per worker: host, device, state (and why), current job, last heartbeat."""
    if fleet["error"]:
        console.print(f"[bold yellow]workers:[/] {fleet['error']}", highlight=False)
        return
    if not fleet["workers"]:
        console.print("workers: none running (start 'facedrop worker' on a GPU machine)")
        return
    now = time.time()
    for card in fleet["workers"]:
        state = card.get("state", "")
        if card.get("reason"):
            state += f" ({card['reason']})"
        job = ""
        if card.get("job"):
            job = (f"  job {card['job']} attempt {card.get('attempt', '')} "
                   f"{card.get('stage', '')} {100 * float(card.get('progress') or 0):.0f}%")
        beat = now - float(card.get("heartbeat") or now)
        console.print(f"worker {card['id']}: host {card.get('host', '')}  device "
                      f"{card.get('device', '')}  {state}{job}  heartbeat {beat:.0f} s ago",
                      highlight=False, markup=False, soft_wrap=True)
