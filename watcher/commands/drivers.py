"""CLI commands: ``facedrop drivers add|list|fetch`` (the driving-clip library).

Each command calls one function of ``pipeline.driving_library`` and draws its result; the
default clip it reports is written into the user's config file here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from pipeline.driving_library import EXAMPLES_LICENCE, ClipInfo, add_clip, fetch_clips, list_clips
from pipeline.settings import PipelineSettings
from watcher.config import load_config, write_user_config
from watcher.console import make_console, print_json, print_table

DRIVER_COLUMNS = ("name", "frames", "fps", "duration", "motion cached")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``drivers add``, ``drivers list`` and ``drivers fetch``."""
    parser = sub.add_parser("drivers", help="manage the driving-clip library")
    drivers = parser.add_subparsers(dest="drivers_command", metavar="ACTION", required=True)
    add = drivers.add_parser("add", help="copy a driving video (or .pkl template) into the library"
                             " (the first clip added becomes the default)")
    add.add_argument("video", type=Path, metavar="VIDEO")
    add.add_argument("--name", default=None, help="library name (default: the file name)")
    add.add_argument("--default", action="store_true",
                     help="make it the default clip for jobs that name none")
    add.set_defaults(func=cmd_add)
    lst = drivers.add_parser("list", help="show the library's clips (the default is marked)")
    lst.add_argument("--json", action="store_true", help="print the library as JSON")
    lst.set_defaults(func=cmd_list)
    fetch = drivers.add_parser("fetch", help="download the official LivePortrait example clips")
    fetch.set_defaults(func=cmd_fetch)


def _settings(args: argparse.Namespace) -> PipelineSettings:
    return load_config(getattr(args, "config", None)).pipeline


def _set_default(args: argparse.Namespace, name: str, console: Console) -> None:
    """Write the new default into the user config; warn when another config file overrides it."""
    path = write_user_config({"pipeline": {"default_driver": name}})
    console.print(f"Default driving clip set to [bold]{name}[/] in {path}", highlight=False)
    effective = _settings(args).default_driver
    if effective != name:
        console.print(f"[yellow]Note:[/] --config or $FACEDROP_CONFIG sets "
                      f"pipeline.default_driver to '{effective}', which wins over {path}.",
                      highlight=False)


def cmd_add(args: argparse.Namespace) -> int:
    """``facedrop drivers add VIDEO [--name N] [--default]``."""
    console = make_console()
    added = add_clip(_settings(args), args.video, args.name, make_default=args.default)
    d = added.driver
    console.print(f"Added [bold]{d.name}[/]: {d.frames} frames at {d.fps:.3f} fps "
                  f"({d.duration:.1f} s)", highlight=False)
    if added.new_default:
        _set_default(args, added.new_default, console)
    return 0


def drivers_rows(clips: Sequence[ClipInfo]) -> list[tuple[str, str, str, str, str]]:
    """The library's rows: name (default marked), frames, fps, duration, motion cached?"""
    return [(f"{c.driver.name} (default)" if c.is_default else c.driver.name,
             str(c.driver.frames), f"{c.driver.fps:.3f}", f"{c.driver.duration:.1f} s",
             c.motion.value) for c in clips]


def cmd_list(args: argparse.Namespace) -> int:
    """``facedrop drivers list [--json]``."""
    settings = _settings(args)
    clips = list_clips(settings)
    if args.json:
        print_json({"drivers_dir": str(settings.drivers_dir),
                    "default": settings.default_driver or None,
                    "drivers": [c.as_json() for c in clips]})
        return 0
    console = make_console()
    if not clips:
        console.print("The driving library is empty: run 'facedrop drivers add VIDEO' (the first "
                      "clip added becomes the default) or 'facedrop drivers fetch'.")
        return 0
    print_table(console, "Driving clips", DRIVER_COLUMNS, drivers_rows(clips))
    if not any(c.is_default for c in clips):
        console.print("No default clip: jobs must name one with 'driving:'. Fix: facedrop "
                      "drivers add VIDEO --default", highlight=False)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """``facedrop drivers fetch``: the example clips, their motion, and a default if none."""
    console = make_console()
    fetched = fetch_clips(_settings(args))
    # The licence once the clips are here (a failed download shows only its error).
    console.print(f"Example driving clips from LivePortrait: {EXAMPLES_LICENCE}", highlight=False)
    for d in fetched.drivers:
        console.print(f"  {d.name}: {d.frames} frames, {d.duration:.1f} s", highlight=False)
    if fetched.motion_deferred:
        console.print(f"Motion not extracted yet ({fetched.motion_deferred}); it will be on "
                      "first use.", highlight=False)
    for d, state in zip(fetched.drivers, fetched.motion, strict=False):
        console.print(f"  {d.name}: motion {state.value}", highlight=False)
    if fetched.new_default:
        _set_default(args, fetched.new_default, console)
    return 0
