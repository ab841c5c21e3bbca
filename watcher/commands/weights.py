"""CLI commands: ``facedrop weights fetch|verify|list|import``.

The weights folder is ``--dir`` or the config's ``paths.weights``. Library code reports through
callbacks; this module draws the licence panels, the progress bar and the tables with rich.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipeline.errors import WeightsError
from pipeline.weights.fetch import FetchResult, fetch_all, resolve_mirror
from pipeline.weights.manifest import MANIFEST, Licence, WeightFile, select
from pipeline.weights.verify import State, import_dir, verify
from watcher.console import make_console, print_json

STATE_STYLE = {State.OK: "green", State.UNPINNED: "yellow", State.MISSING: "red",
               State.SIZE_MISMATCH: "red", State.HASH_MISMATCH: "red"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``weights`` and its actions."""
    parser = sub.add_parser("weights", help="download, verify, list or import model weights")
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download model files (resumable, verified)")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="file or group (liveportrait, wav2lip, gfpgan, landmarks, syncnet, "
                            "musetalk, voice); default all but musetalk (about 4 GB) and voice "
                            "(JoyVASA, about 0.8 GB), fetched when named")
    fetch.add_argument("--mirror", default=None, metavar="URL",
                       help="base URL serving the weights layout (wins over "
                            "FACEDROP_WEIGHTS_MIRROR)")
    fetch.set_defaults(func=cmd_fetch)
    ver = actions.add_parser("verify", help="check every file's size and sha256")
    ver.set_defaults(func=cmd_verify)
    lst = actions.add_parser("list", help="list the model files, their sources and licences")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    lst.set_defaults(func=cmd_list)
    imp = actions.add_parser("import", help="copy model files you already have from a folder")
    imp.add_argument("source", type=Path, metavar="SOURCE_DIR",
                     help="a folder holding model files (searched recursively, by name or content)")
    imp.set_defaults(func=cmd_import)
    for p in (fetch, ver, lst, imp):
        p.add_argument("--dir", type=Path, default=None, metavar="WEIGHTS_DIR",
                       help="the weights folder to fill or check (default: paths.weights)")


def weights_dir(args: argparse.Namespace) -> Path:
    """``--dir`` or the configured weights folder."""
    if getattr(args, "dir", None) is not None:
        return Path(args.dir).expanduser().resolve()
    from watcher.config import load_config

    return load_config(args.config).paths.weights


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def show_licence(console: Console, licence: Licence, files: Sequence[WeightFile]) -> None:
    """One panel per licence, before anything it covers is downloaded."""
    style = "yellow" if "non-commercial" in licence.name.lower() else "cyan"
    names = ", ".join(f.filename for f in files)
    rules = f"\nUse restrictions: {licence.restrictions}" if licence.restrictions else ""
    body = f"[bold]{licence.name}[/]\n{licence.note}{rules}\n{licence.url}\nFiles: {names}"
    console.print(Panel(body, title="Licence", border_style=style, expand=False),
                  highlight=False)


def print_results(console: Console, results: list[FetchResult]) -> int:
    """One line per file (its full path, never cut to fit a table), the error below it."""
    console.print("[bold]facedrop weights fetch[/]")
    width = max(len(r.status) for r in results) if results else 0
    for r in results:
        style = {"failed": "red", "present": "dim"}.get(r.status, "green")
        console.print(f"  [{style}]{r.status:<{width}}[/]  {r.entry.relpath}", highlight=False)
        if r.error is not None:
            console.print(f"  {'':<{width}}  {escape(r.error.problem)}", highlight=False)
    fixes: dict[str, list[str]] = {}  # one line per distinct fix, not one per file
    for r in results:
        if r.error is not None:
            fixes.setdefault(r.error.fix, []).append(r.entry.name)
    failed = sum(len(names) for names in fixes.values())
    for fix, names in fixes.items():
        who = "" if len(names) == failed and len(names) > 1 else f" ({', '.join(names)})"
        console.print(f"[bold]Fix{who}:[/] {escape(fix)}", highlight=False)
    return 1 if failed else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the named (or all but the on-request groups) model files into the folder."""
    console = make_console()
    root = weights_dir(args)
    entries = select(args.names, MANIFEST)
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:

        def on_progress(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        results = fetch_all(entries, root, mirror=resolve_mirror(args.mirror),
                            progress=on_progress,
                            on_licence=lambda lic, files: show_licence(console, lic, files))
    return print_results(console, results)


def cmd_verify(args: argparse.Namespace) -> int:
    """Hash every model file; exit 1 when any is missing or damaged."""
    console = make_console()
    root = weights_dir(args)
    statuses = verify(root)
    table = Table(title=f"Model weights in {root}")
    for col in ("file", "state", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        table.add_row(s.entry.relpath, f"[{STATE_STYLE[s.state]}]{s.state.value}[/]", s.detail,
                      s.fix)
    console.print(table)
    return 0 if all(s.ok for s in statuses) else 1


def _source(entry: WeightFile, mirror: str | None) -> str:
    return entry.source_url(mirror) + (f" : {entry.member}" if entry.archive and not mirror
                                       else "")


def cmd_list(args: argparse.Namespace) -> int:
    """List every model file with its source, size, licence and whether it is present."""
    root = weights_dir(args)
    mirror = resolve_mirror()
    statuses = verify(root, hash_files=False)
    if args.json:
        print_json({"weights_dir": str(root), "mirror": mirror, "files": [
            {"name": s.entry.name, "group": s.entry.group, "file": s.entry.relpath,
             "path": str(s.path), "size": s.entry.size, "sha256": s.entry.sha256,
             "licence": s.entry.licence.name,
             "restrictions": s.entry.licence.restrictions, "state": s.state.value, "ok": s.ok,
             "source": _source(s.entry, mirror)} for s in statuses]})
        return 0
    table = Table(title=f"Model weights ({root})")
    for col in ("name", "file", "size", "licence", "present", "source"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        e = s.entry
        present = f"[{STATE_STYLE[s.state]}]{'yes' if s.ok else s.state.value}[/]"
        table.add_row(e.name, e.relpath, _size(e.size), e.licence.name, present,
                      _source(e, mirror))
    console = make_console()
    console.print(table)
    for licence in dict.fromkeys(s.entry.licence for s in statuses if s.entry.licence.restrictions):
        console.print(f"[yellow]{licence.name}[/] ({licence.url}) use restrictions: "
                      f"{licence.restrictions}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Copy model files found under DIR (by name or content, hash-checked) into the folder.

    Exits non-zero when the folder gave nothing usable (empty, or no file facedrop knows) while
    files are still missing, or when a file had a known name but the wrong contents.
    """
    console = make_console()
    root = weights_dir(args)
    source = args.source.expanduser()
    results = import_dir(source, root)
    table = Table(title=f"Import from {args.source} into {root}")
    for col in ("file", "result", "from", "detail"):
        table.add_column(col, overflow="fold")
    styles = {"imported": "green", "present": "dim", "rejected": "red", "not found": "yellow"}
    for r in results:
        table.add_row(r.entry.relpath, f"[{styles[r.status]}]{r.status}[/]",
                      str(r.source or ""), r.detail)
    console.print(table)
    missing = [r.entry.filename for r in results if r.status not in ("imported", "present")]
    if missing and not any(r.status in ("imported", "rejected") for r in results):
        known = ", ".join(sorted({r.entry.filename for r in results}))
        raise WeightsError(
            f"found no model file facedrop knows in {source}",
            file=source,
            fix=f"give the folder that holds the files (looked for, by name or content: {known});"
                f" or download them: facedrop weights fetch",
        )
    if missing:
        console.print(f"Still missing: {', '.join(missing)}. Fix: facedrop weights fetch "
                      f"{' '.join(missing)}", highlight=False)
    return 1 if any(r.status == "rejected" for r in results) else 0
