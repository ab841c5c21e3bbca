"""CLI: ``service install|uninstall|status|restart [--worker] [--dry-run]``, and ``launchagent``.

``service`` manages this system's service: a ``systemd --user`` unit on Linux, the LaunchAgent
on macOS (``--manager`` picks the other one, e.g. to print it with ``--dry-run``).
``launchagent`` is the older name and always means the LaunchAgent.
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from pipeline.errors import ConfigError
from watcher.commands.launchagent import launchagent_main
from watcher.console import make_console
from watcher.linux import systemd as sd

ACTIONS = ("install", "uninstall", "status", "restart")
MANAGERS = ("systemd", "launchd")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``service`` and its macOS-only alias ``launchagent``."""
    service = sub.add_parser("service", help="install or manage the service that runs facedrop "
                             "(systemd on Linux, a LaunchAgent on macOS)")
    _arguments(service)
    service.add_argument("--manager", choices=MANAGERS, default=None,
                         help="systemd or launchd (default: this system's)")
    agent = sub.add_parser("launchagent", help="install or manage the macOS LaunchAgent "
                           "(the same as 'service' on a Mac)")
    _arguments(agent)
    agent.set_defaults(manager="launchd")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the service file and the commands; change nothing")
    parser.add_argument("--worker", action="store_true",
                        help="the service for 'facedrop worker' (a fleet's GPU machine), "
                             "not watch")
    parser.add_argument("--device", default=None,
                        help="with --worker: the device the worker runs on (e.g. cuda:1)")
    parser.set_defaults(func=cmd_service)


def native_manager(system: str | None = None) -> str:
    return "launchd" if (system or sys.platform) == "darwin" else "systemd"


def cmd_service(args: argparse.Namespace) -> int:
    """``facedrop service ACTION`` (or ``launchagent ACTION``)."""
    if args.device and not args.worker:
        raise ConfigError("--device is for the worker's service", fix="add --worker (a fleet's "
                         "GPU machine); the daemon's device is pipeline.device in the config")
    worker: tuple[str, ...] = ()
    if args.worker:
        worker = ("worker", "--device", args.device) if args.device else ("worker",)
    manager = args.manager or native_manager()
    main = launchagent_main if manager == "launchd" else systemd_main
    return main(args.action, config_path=args.config, dry_run=args.dry_run,
                console=make_console(), worker=worker)


def unit_spec(config_path: Path | None, home: Path, environ: Mapping[str, str] | None = None,
              *, worker: tuple[str, ...] = (), python: str | None = None) -> sd.UnitSpec:
    """The unit from the config (shutdown timeout, rescan period) and this shell's layers."""
    from watcher.config import ENV_CONFIG, load_config

    cfg = load_config(config_path, home=home, platform="linux")
    env_config = (os.environ if environ is None else environ).get(ENV_CONFIG)
    return sd.build_spec(shutdown_timeout=cfg.daemon.shutdown_timeout,
                         rescan_seconds=cfg.daemon.rescan_seconds, home=home,
                         config_path=config_path, env_config=env_config, python=python,
                         command=worker or ("watch",))


def _plan(action: str, spec: sd.UnitSpec, path: Path, home: Path) -> list[sd.Step]:
    return {"install": lambda: sd.install_plan(spec, path, home),
            "uninstall": lambda: sd.uninstall_plan(spec.name, path),
            "restart": lambda: sd.restart_plan(spec.name),
            "status": lambda: sd.status_plan(spec.name)}[action]()


def systemd_main(action: str, *, config_path: Path | None, dry_run: bool, console: Console,
                 system: str | None = None, home: Path | None = None, user: str | None = None,
                 runner: sd.Runner = sd.run_command, worker: tuple[str, ...] = (),
                 environ: Mapping[str, str] | None = None) -> int:
    """Do (or, with ``dry_run``, print) one action on the systemd user unit; the exit status."""
    system = system or sys.platform
    home = home or Path.home()
    spec = unit_spec(config_path, home, environ, worker=worker)
    path = sd.unit_dir(home, environ) / spec.name
    plan = _plan(action, spec, path, home)
    if dry_run:
        for step in plan:  # plain text, never wrapped: it can be copied or saved as it is
            console.print(step.line(), markup=False, highlight=False, soft_wrap=True)
    if not system.startswith("linux"):
        console.print(f"[bold red]systemd user services are a Linux feature[/]: this is "
                      f"{system}. On a Mac, 'facedrop service install' writes a LaunchAgent.")
        return 1
    if dry_run:
        return 0
    user = user or getpass.getuser()
    results = sd.execute(plan, runner)
    if action == "status":
        return _status(console, spec, path, results, sd.lingering(user, runner), user)
    console.print(f"[green]{action}[/] {spec.name}: done.", highlight=False)
    if action == "install":
        console.print(f"Unit: {path}\nLogs: journalctl --user -u "
                      f"{spec.name.removesuffix('.service')} -f", highlight=False)
        _linger_hint(console, sd.lingering(user, runner), user)
    return 0


def _status(console: Console, spec: sd.UnitSpec, path: Path,
            results: Sequence[subprocess.CompletedProcess[str]], linger: bool | None,
            user: str) -> int:
    console.print(f"unit: {path} ({'present' if path.exists() else 'absent'})",
                  highlight=False)
    props = sd.properties(results[0])
    if props.get("LoadState", "not-found") == "not-found":
        console.print(f"{spec.name} is not installed. Fix: facedrop service install"
                      + (" --worker" if spec.name == sd.WORKER_UNIT else ""), highlight=False)
        return 3
    for key in sd.SHOW_PROPERTIES:
        if key in props:
            console.print(f"{key} = {props[key]}", highlight=False)
    _linger_hint(console, linger, user)
    return 0 if props.get("ActiveState") == "active" else 3


def _linger_hint(console: Console, linger: bool | None, user: str) -> None:
    if linger:
        console.print("Lingering is on: the service runs from boot, without a login.")
        return
    console.print(f"The service runs only while {user} is logged in. To start it at boot and "
                  f"keep it running after you log out: sudo loginctl enable-linger {user}",
                  highlight=False)
