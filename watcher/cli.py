"""The ``facedrop`` command line: one argparse tree, one module per command group.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)``, which adds its sub-commands and
sets ``func`` (``args -> int``) on them. Errors under ``FacedropError`` are printed with rich and
mapped to their exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pipeline.device import enable_mps_fallback
from pipeline.errors import FacedropError
from watcher.console import make_console

COMMAND_MODULES = (
    "watcher.commands.daemon",  # watch, run, status, submit
    "watcher.commands.weights",  # weights fetch|verify|list|import
    "watcher.commands.drivers",  # drivers add|list|fetch
    "watcher.commands.doctor",  # doctor
    "watcher.commands.service",  # service ... (systemd or launchd), launchagent ...
    "watcher.commands.launchagent",  # setup --dropbox, logs
    "watcher.commands.bench",  # bench
    "watcher.commands.example",  # example
    "watcher.commands.score",  # score
    "watcher.commands.fleet",  # worker (queue.backend: redis), cancel
    "watcher.commands.studio",  # serve, retry, delete
)


CONFIG_HELP = "config file (YAML); may come before or after the command"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="facedrop", description="Turn a photo and a voice recording into a talking-head video."
    )
    parser.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _config_everywhere(parser)
    return parser


def _config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--config`` after any (sub)command too: ``facedrop status --config X``.

    Sub-parsers get it with a suppressed default, so leaving it out there keeps the value given
    before the command (argparse copies only the attributes a sub-parser actually set).
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if "--config" not in child._option_string_actions:
                child.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                                   help=CONFIG_HELP)
            _config_everywhere(child)


def print_error(console: Console, err: FacedropError) -> None:
    """Print a user-facing error: problem in red, file and fix below it."""
    console.print(f"[bold red]{err.title}:[/] {escape(err.problem)}", highlight=False)
    if err.file:
        console.print(f"  [dim]File:[/] {escape(err.file)}", highlight=False)
    if err.fix:
        console.print(f"  [bold]Fix:[/] {escape(err.fix)}", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facedrop`` console script."""
    # torch reads PYTORCH_ENABLE_MPS_FALLBACK when it is first imported: set it before anything
    # imports torch, so an op missing on an older macOS falls back to the CPU instead of crashing.
    enable_mps_fallback()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FacedropError as err:
        print_error(make_console(stderr=True), err)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
