"""CLI commands: the LaunchAgent actions (of ``service``), ``setup --dropbox``, ``logs``.

launchd exists only on macOS: elsewhere ``launchagent`` says so and exits 1, after ``--dry-run``
has still printed the plist and the launchctl commands it would run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from watcher.console import make_console
from watcher.macos import launchagent as la
from watcher.macos.privacy import grant_binary, is_protected

ACTIONS = ("install", "uninstall", "status", "restart")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``setup`` and ``logs`` (``watcher.commands.service`` adds ``launchagent``)."""
    setup = sub.add_parser("setup", help="one-time set-up (e.g. a shared Dropbox inbox)")
    setup.add_argument("--dropbox", action="store_true", required=True,
                       help="put inbox and outbox in Dropbox/facedrop")
    setup.add_argument("--dropbox-path", type=Path, default=None,
                       help="the Dropbox folder, when it cannot be found automatically")
    setup.set_defaults(func=cmd_setup)
    logs = sub.add_parser("logs", help="show the daemon's log")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    logs.set_defaults(func=cmd_logs)


def agent_spec(config_path: Path | None, home: Path,
               environ: Mapping[str, str] | None = None, *,
               worker: tuple[str, ...] = (), python: str | None = None) -> la.AgentSpec:
    """The spec from the config (shutdown timeout, log folder) and this shell's config layers.

    The agent works in the home folder: nothing depends on where facedrop's code lives.
    """
    from watcher.config import ENV_CONFIG, load_config

    cfg = load_config(config_path, home=home, platform="darwin")
    env_config = (os.environ if environ is None else environ).get(ENV_CONFIG)
    if worker:  # ``facedrop worker [--device D]`` under its own label
        return la.build_spec(shutdown_timeout=cfg.daemon.shutdown_timeout,
                             log_dir=cfg.paths.logs, working_dir=home, config_path=config_path,
                             env_config=env_config, python=python, label=la.WORKER_LABEL,
                             command=worker)
    return la.build_spec(shutdown_timeout=cfg.daemon.shutdown_timeout, log_dir=cfg.paths.logs,
                         working_dir=home, config_path=config_path, env_config=env_config,
                         python=python)


def _steps(action: str, uid: int, plist: Path, label: str = la.LABEL) -> list[la.Step]:
    return {"install": lambda: la.install_steps(uid, plist, label),
            "uninstall": lambda: la.uninstall_steps(uid, label),
            "restart": lambda: la.restart_steps(uid, label),
            "status": lambda: la.status_steps(uid, label)}[action]()


def _print_plan(console: Console, action: str, spec: la.AgentSpec, plist: Path,
                steps: list[la.Step]) -> None:
    if action == "install":  # plain text, never wrapped: it can be copied or parsed as it is
        console.print(f"# {plist}", markup=False, highlight=False, soft_wrap=True)
        console.print(la.render_plist(spec).decode().rstrip("\n"), markup=False,
                      highlight=False, soft_wrap=True)
        console.print(f"mkdir -p {spec.log_dir}", highlight=False, soft_wrap=True)
    if action == "uninstall":
        console.print(f"rm -f {plist}")
    for step in steps:
        console.print(step.command(), highlight=False)


def _warnings(console: Console, spec: la.AgentSpec, home: Path) -> None:
    code = la.code_dir()
    if is_protected(code, home):
        console.print(f"[yellow]Warning:[/] facedrop lives in {code}, a privacy-"
                      "protected folder: under launchd it may not be able to read its own code. "
                      "Move it, or grant access (see 'facedrop doctor').")
    console.print(f"Privacy grants (Full Disk Access, Files and Folders) belong to "
                  f"{grant_binary()}.", highlight=False)


def launchagent_main(action: str, *, config_path: Path | None, dry_run: bool, console: Console,
                     system: str | None = None, home: Path | None = None,
                     uid: int | None = None, runner: la.Runner = la.run_launchctl,
                     worker: tuple[str, ...] = ()) -> int:
    """Do (or, with ``dry_run``, print) one LaunchAgent action; returns the exit status."""
    system = system or sys.platform
    home = home or Path.home()
    uid = os.getuid() if uid is None else uid
    spec = agent_spec(config_path, home, worker=worker)
    plist = la.plist_path(home, spec.label)
    steps = _steps(action, uid, plist, spec.label)
    if dry_run:
        _print_plan(console, action, spec, plist, steps)
    if system != "darwin":
        console.print(f"[bold red]LaunchAgents are a macOS feature[/]: this is {system}. "
                      "On Linux, 'facedrop service install' writes a systemd user service.")
        return 1
    if dry_run:
        return 0
    if action == "install":
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        la.write_plist(plist, la.render_plist(spec))
    results = la.run_steps(steps, runner)
    if action == "uninstall":
        plist.unlink(missing_ok=True)
    return _report(console, action, spec, plist, results, home)


def _report(console: Console, action: str, spec: la.AgentSpec, plist: Path,
            results: list[subprocess.CompletedProcess[str]], home: Path) -> int:
    if action == "status":
        loaded = not la.not_loaded(results[0])
        console.print(f"plist: {plist} ({'present' if plist.exists() else 'absent'})")
        if not loaded:
            console.print(f"{spec.label} is not loaded. Fix: facedrop launchagent install")
            return 3
        keep = ("state =", "pid =", "last exit code", "runs =")
        for line in results[0].stdout.splitlines():
            if line.strip().startswith(keep):
                console.print(line.strip(), highlight=False)
        return 0
    console.print(f"[green]{action}[/] {spec.label}: done.")
    if action == "install":
        console.print(f"Logs: {spec.log_dir}")
        _warnings(console, spec, home)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """``facedrop setup --dropbox``: inbox and outbox in Dropbox, config updated."""
    from watcher.macos.dropbox import setup_dropbox

    console = make_console()
    result = setup_dropbox(Path.home(), dropbox=args.dropbox_path, config_path=args.config)
    console.print(f"Inbox:  {result.inbox}\nOutbox: {result.outbox}\nConfig: {result.config}",
                  highlight=False)
    console.print(f"Share the folder {result.inbox.parent} with your teammate in Dropbox.",
                  highlight=False)
    if sys.platform == "darwin":
        console.print("Dropbox folders are privacy-protected on macOS: the LaunchAgent needs "
                      f"Full Disk Access for {grant_binary()}. Check with 'facedrop doctor', "
                      "then 'facedrop launchagent restart'.", highlight=False)
    console.print("\n[bold]For your teammate:[/]\n" + result.teammate_text, highlight=False)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """``facedrop logs [-f]``: the last lines of the log, then (with -f) new ones as they come."""
    from watcher.config import load_config
    from watcher.logs import follow, log_file, tail

    path = log_file(load_config(args.config).paths.logs)
    if not path.exists() and not args.follow:
        make_console(stderr=True).print(f"No log yet at {path}: the daemon has not run.")
        return 1
    for line in tail(path, args.lines):
        sys.stdout.write(line)
    sys.stdout.flush()
    if args.follow:
        try:
            follow(path, lambda line: (sys.stdout.write(line), sys.stdout.flush()))
        except KeyboardInterrupt:
            return 0
    return 0
