"""``facedrop serve`` (the studio page), ``facedrop retry`` and ``facedrop delete``."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from rich.console import Console

from pipeline.errors import ConfigError, InputError
from watcher.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``, ``retry`` and ``delete``."""
    serve = sub.add_parser("serve", help="the studio page: queue, results, submit (a browser)")
    serve.add_argument("--host", default=None,
                       help="address to listen on (default: studio.host, 127.0.0.1); any "
                       "other than loopback needs the token")
    serve.add_argument("--port", type=int, default=None, help="port (default: studio.port)")
    serve.set_defaults(func=cmd_serve)

    retry = sub.add_parser("retry", help="submit a failed job's own files again")
    retry.add_argument("job", metavar="FOLDER", help="the job's outbox folder name")
    retry.set_defaults(func=cmd_retry)

    delete = sub.add_parser("delete", help="delete a finished job's outbox folder")
    delete.add_argument("job", metavar="FOLDER", help="the job's outbox folder name")
    delete.add_argument("--yes", action="store_true", help="do not ask (required without a tty)")
    delete.set_defaults(func=cmd_delete)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """``facedrop serve``: the page on loopback, or on the LAN behind the token."""
    import uvicorn

    from watcher.studio.app import build_app
    from watcher.studio.auth import TOKEN_FILE, Guard, load_or_create_token

    config = load_config(args.config)
    host = args.host or config.studio.host
    port = config.studio.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a port", fix="use 1024-65535, e.g. 8765")
    _check_free(host, port)
    console = Console()
    token = None
    if not is_loopback(host):
        token, made = load_or_create_token(config.paths.state)
        if made:
            console.print(f"LAN mode. The page's token (shown once; enter it once per browser):"
                          f"\n  [bold]{token}[/]", highlight=False)
        else:
            console.print(f"LAN mode: the page needs the token kept in "
                          f"{config.paths.state / TOKEN_FILE}", highlight=False)
    console.print(f"studio page: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/",
                  highlight=False)
    uvicorn.run(build_app(config, Guard(token)), host=host, port=port, log_level="warning",
                access_log=False)
    return 0


def _check_free(host: str, port: int) -> None:
    """A port in use gets a message and a fix, not a server that exits with a log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror})",
                              fix="stop what uses that port, or give --port another one "
                              "(or studio.port in the config)") from None


def cmd_retry(args: argparse.Namespace) -> int:
    from watcher.actions import retry_job

    acted = retry_job(load_config(args.config), args.job)
    Console().print(acted.message, highlight=False, markup=False)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from watcher.actions import delete_result, finished_folder

    config = load_config(args.config)
    if not args.yes:
        finished_folder(config, args.job)  # say what is wrong before asking
        if not sys.stdin.isatty():
            raise InputError("nobody can confirm the delete here", fix="add --yes")
        answer = input(f"Delete the outbox folder {args.job!r} and everything in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            Console().print("kept", highlight=False)
            return 1
    acted = delete_result(config, args.job)
    Console().print(acted.message, highlight=False, markup=False)
    return 0
