"""CLI commands: ``facedrop drivers add|list|fetch`` (the driving-clip library)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.liveportrait.drivers import Driver, DriverLibrary
from pipeline.liveportrait.examples import LICENCE, fetch_examples
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.settings import PipelineSettings
from watcher.config import load_config, write_user_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``drivers add``, ``drivers list`` and ``drivers fetch``."""
    parser = sub.add_parser("drivers", help="manage the driving-clip library")
    drivers = parser.add_subparsers(dest="drivers_command", metavar="ACTION", required=True)
    add = drivers.add_parser("add", help="copy a driving video (or .pkl template) into the library")
    add.add_argument("video", type=Path)
    add.add_argument("--name", default=None, help="library name (default: the file name)")
    add.set_defaults(func=cmd_add)
    lst = drivers.add_parser("list", help="show the library's clips")
    lst.set_defaults(func=cmd_list)
    fetch = drivers.add_parser("fetch", help="download the official LivePortrait example clips")
    fetch.set_defaults(func=cmd_fetch)


def _settings(args: argparse.Namespace) -> PipelineSettings:
    return load_config(getattr(args, "config", None)).pipeline


def cmd_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    driver = DriverLibrary(settings.drivers_dir).add(args.video, args.name)
    Console().print(f"Added [bold]{driver.name}[/]: {driver.frames} frames at "
                    f"{driver.fps:.3f} fps ({driver.duration:.1f} s)", highlight=False)
    return 0


def drivers_table(drivers: Sequence[Driver], cache: MotionCache, default: str) -> Table:
    """The library as a rich table: name, frames, fps, duration, motion cached?"""
    table = Table(title="Driving clips")
    for col in ("name", "frames", "fps", "duration", "motion cached"):
        table.add_column(col, justify="right" if col in ("frames", "fps", "duration") else "left")
    for d in drivers:
        cached = "template" if d.is_template else ("yes" if cache.has_clip(d.sha256) else "no")
        name = f"{d.name} (default)" if d.name == default else d.name
        table.add_row(name, str(d.frames), f"{d.fps:.3f}", f"{d.duration:.1f} s", cached)
    return table


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    drivers = DriverLibrary(settings.drivers_dir).list()
    console = Console()
    if not drivers:
        console.print("The driving library is empty: run 'facedrop drivers fetch' or "
                      "'facedrop drivers add VIDEO'.")
        return 0
    console.print(drivers_table(drivers, MotionCache(settings.cache_dir), settings.default_driver))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    console = Console()
    console.print(f"Example driving clips from LivePortrait: {LICENCE}", highlight=False)
    library = DriverLibrary(settings.drivers_dir)
    drivers = fetch_examples(library)
    for d in drivers:
        console.print(f"  {d.name}: {d.frames} frames, {d.duration:.1f} s", highlight=False)
    _extract(settings, drivers, console)
    if not settings.default_driver and drivers:
        path = write_user_config({"pipeline": {"default_driver": drivers[0].name}})
        console.print(f"Default driving clip set to [bold]{drivers[0].name}[/] in {path}",
                      highlight=False)
    return 0


def _extract(settings: PipelineSettings, drivers: Sequence[Driver], console: Console) -> None:
    """Extract the clips' motion into the cache now, so the first job does not wait for it."""
    from pipeline.errors import WeightsError
    from pipeline.liveportrait.loader import extract_library_motion

    try:
        states = extract_library_motion(settings, [d.path for d in drivers])
    except WeightsError as err:
        console.print(f"Motion not extracted yet ({err.problem}); it will be on first use.",
                      highlight=False)
        return
    for d, state in zip(drivers, states, strict=True):
        console.print(f"  {d.name}: motion {state.value}", highlight=False)
