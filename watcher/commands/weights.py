"""CLI commands: ``facedrop weights fetch|verify|list|import``.

The weights folder is ``--weights-dir`` or the config's ``paths.weights``. Library code reports
through callbacks; this module draws the progress bar and the tables with rich, and prints each
licence once, on one line with its link, for the files a command actually brought in.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
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

from pipeline.errors import FacedropError, WeightsError
from pipeline.weights.fetch import FetchResult, fetch_all, resolve_mirror
from pipeline.weights.manifest import (
    MANIFEST,
    OPTIONAL_GROUPS,
    WeightFile,
    fetch_names,
    select,
)
from pipeline.weights.verify import ImportResult, State, import_dir, verify
from watcher.commands.options import add_weights_dir, weights_dir
from watcher.console import make_console, print_json, print_table

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
    imp.add_argument("--trust", action="store_true",
                     help="also take a file with the right name that is not the pinned one (a "
                          "mirror's re-save, a fine-tune); each is named in a warning")
    imp.set_defaults(func=cmd_import)
    for p in (fetch, ver, lst, imp):
        add_weights_dir(p, "the weights folder to fill or check (default: paths.weights)")


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def print_licences(console: Console, entries: Sequence[WeightFile]) -> None:
    """Each licence of ``entries`` once, on one line: the groups it covers, its name, its link."""
    licences = dict.fromkeys(e.licence for e in entries)
    if not licences:
        return
    console.print("[bold]Licences[/] (facedrop weights list shows them all):", highlight=False)
    for licence in licences:
        groups = ", ".join(dict.fromkeys(e.group for e in entries if e.licence == licence))
        style = "yellow" if licence.restrictions else "cyan"
        console.print(f"  {groups}: [{style}]{escape(licence.name)}[/] {licence.url}",
                      highlight=False, soft_wrap=True)


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
                            progress=on_progress)
    code = print_results(console, results)
    # After the downloads, so only what was actually fetched is shown (not before a failure).
    print_licences(console, [r.entry for r in results if r.status == "downloaded"])
    return code


def cmd_verify(args: argparse.Namespace) -> int:
    """Hash every model file; exit 1 when any is missing or damaged."""
    console = make_console()
    root = weights_dir(args)
    statuses = verify(root)
    print_table(console, f"Model weights in {root}", ("file", "state", "detail", "fix"),
                [(s.entry.relpath, f"[{STATE_STYLE[s.state]}]{s.state.value}[/]", s.detail,
                  s.fix) for s in statuses], prose=("detail", "fix"))
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
    console = make_console()
    if console.is_terminal:
        table = Table(title=f"Model weights ({root})")
        for col in ("name", "file", "size", "licence", "present", "source"):
            table.add_column(col, overflow="fold")
        for s in statuses:
            e = s.entry
            present = f"[{STATE_STYLE[s.state]}]{'yes' if s.ok else s.state.value}[/]"
            table.add_row(e.name, e.relpath, _size(e.size), e.licence.name, present,
                          _source(e, mirror))
        console.print(table)
    else:  # piped: one short line per file and its source below it, nothing folded or cut
        console.print(f"Model weights ({root})", highlight=False)
        for s in statuses:
            e = s.entry
            console.print(f"  {e.name}  {e.relpath}  {_size(e.size)}  "
                          f"{'present' if s.ok else s.state.value}  {e.group}", highlight=False)
            console.print(f"    source: {e.source_url(mirror)}", highlight=False)
            if e.archive is not None and not mirror:
                console.print(f"    in it: {e.member}", highlight=False)
    for licence in dict.fromkeys(s.entry.licence for s in statuses if s.entry.licence.restrictions):
        console.print(f"[yellow]{escape(licence.name)}[/] {licence.url}", highlight=False)
        # Our own line breaks: piped, the console never folds a line by itself.
        console.print(textwrap.fill(f"use restrictions: {licence.restrictions}", width=100,
                                    initial_indent="  ", subsequent_indent="  "),
                      highlight=False, markup=False)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Copy model files found under DIR (by name or content, hash-checked) into the folder.

    Exits non-zero when the folder gave nothing usable (empty, or no file facedrop knows) while
    files are still missing, or when a file had a known name but the wrong contents (unless
    ``--trust`` took it, with a warning).
    """
    console = make_console()
    root = weights_dir(args)
    source = args.source.expanduser()
    results = import_dir(source, root, trust=args.trust)
    styles = {"imported": "green", "present": "dim", "rejected": "red", "not found": "yellow",
              "trusted": "yellow"}
    print_table(console, f"Import from {args.source} into {root}",
                ("weight", "file", "result", "from", "detail"),
                [(r.entry.name, r.entry.relpath, f"[{styles[r.status]}]{r.status}[/]",
                  str(r.source or ""), r.detail) for r in results], prose=("from", "detail"))
    usable = any(r.status in ("imported", "rejected", "trusted") for r in results)
    missing = [r.entry for r in results if r.status not in ("imported", "present", "trusted")]
    if missing and not usable:
        known = ", ".join(sorted({r.entry.filename for r in results}))
        raise WeightsError(
            f"found no model file facedrop knows in {source}",
            file=source,
            fix=f"give the folder that holds the files (looked for, by name or content: {known});"
                f" or download them: facedrop weights fetch",
        )
    for r in results:
        if r.status == "trusted":
            console.print(f"[yellow]Warning:[/] {r.entry.name} ({r.entry.relpath}) is not the "
                          f"pinned file ({r.detail}); imported because of --trust",
                          highlight=False)
    _print_missing(console, missing, [r for r in results if r.status == "rejected"], source,
                   _default_job_needs(args))
    print_licences(console, [r.entry for r in results if r.status in ("imported", "trusted")])
    return 1 if any(r.status == "rejected" for r in results) else 0


def _default_job_needs(args: argparse.Namespace) -> frozenset[str] | None:
    """Names of the model files a job with the configured defaults loads (lip sync, enhance,
    engine), as ``run`` decides it; None when the configuration does not load (the closing
    lines then go by group alone)."""
    from pipeline.prerequisites import JobNeeds, needed_weights
    from watcher.config import load_config

    try:
        config = load_config(getattr(args, "config", None))
    except FacedropError:  # the import itself does not need the config
        return None
    needs = JobNeeds(lipsync=config.job_defaults.lipsync, enhance=config.job_defaults.enhance)
    return frozenset(e.name for e in needed_weights(config.pipeline, needs))


def _print_missing(console: Console, missing: Sequence[WeightFile],
                   rejected: Sequence[ImportResult], source: Path,
                   needed: frozenset[str] | None = None) -> None:
    """What is still missing, by weight (or whole group) name: what a default job needs
    first, then what only some jobs use (another engine, enhance, voice motion)."""
    if rejected:
        names = ", ".join(r.entry.name for r in rejected)
        console.print(f"Not the pinned files: {names}. If they are the ones you mean (a "
                      f"re-save, a fine-tune): facedrop weights import --trust {source}",
                      highlight=False)
    missing = [e for e in missing if e not in {r.entry for r in rejected}]
    if needed is None:
        required = [e for e in missing if e.group not in OPTIONAL_GROUPS]
    else:
        required = [e for e in missing if e.name in needed]
    optional = [e for e in missing if e not in required]
    if required:
        names = " ".join(fetch_names(required))
        console.print(f"Still missing: {names}. Fix: facedrop weights fetch {names}",
                      highlight=False)
    if optional:  # optional groups by group: fetching a group skips the files already there
        names = " ".join(fetch_names([e for e in optional if e.group not in OPTIONAL_GROUPS])
                         + list(dict.fromkeys(e.group for e in optional
                                              if e.group in OPTIONAL_GROUPS)))
        console.print(f"Optional, not needed by a default job: {names} (fetch when wanted: "
                      f"facedrop weights fetch {names})", highlight=False)
