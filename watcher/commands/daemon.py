"""CLI commands around the job lifecycle: ``watch``, ``run``, ``status``, ``submit``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.errors import FacedropError, InputError
from pipeline.prerequisites import require as require_prerequisites
from pipeline.spec import CancelToken
from watcher.config import load_config
from watcher.daemon import Daemon, pipeline_factory, running_daemon_pid
from watcher.execute import execute_job, remove_partials
from watcher.jobfolder import AUDIO_EXT, IMAGE_EXT, JOB_FILE, VIDEO_EXT, validate_job_keys
from watcher.jobneeds import job_needs
from watcher.logs import FORMAT as LOG_FORMAT
from watcher.logs import setup_logging, teardown_logging
from watcher.macos.notify import make_notifier
from watcher.outbox import reserve_dir, write_atomic, write_status
from watcher.state import DB_NAME, JobState, StateDB


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``watch``, ``run``, ``status`` and ``submit``."""
    watch = sub.add_parser("watch", help="run the daemon in the foreground (watch the inbox)")
    watch.set_defaults(func=cmd_watch)

    run = sub.add_parser("run", help="run one job folder now, with progress bars")
    run.add_argument("job_dir", type=Path, metavar="JOB_DIR")
    run.add_argument("--out", type=Path, default=None, help="output root (default: the outbox)")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="show the queue, the running job and recent results")
    status.add_argument("--recent", type=int, default=10, help="how many finished jobs to list")
    status.set_defaults(func=cmd_status)

    submit = sub.add_parser("submit", help="put a photo and a recording into the inbox as a job")
    submit.add_argument("face", type=Path, metavar="FACE")
    submit.add_argument("audio", type=Path, metavar="AUDIO")
    submit.add_argument("--driving", default=None, help="driving clip name or video file")
    submit.add_argument("--name", default=None, help="job name (default: the audio file's name)")
    submit.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a job.yaml setting, e.g. --set fps=30 --set enhance=true (repeatable)",
    )
    submit.set_defaults(func=cmd_submit)


def cmd_watch(args: argparse.Namespace) -> int:
    """``facedrop watch``: the daemon, in the foreground, until SIGTERM/SIGINT."""
    config = load_config(args.config)
    setup_logging(config.paths.logs)
    console = logging.StreamHandler()  # launchd sends stderr to its own log file too
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger("facedrop").addHandler(console)
    notifier = make_notifier(config.daemon.notify)
    try:
        return Daemon(config, pipeline_factory(), notifier=notifier).run()
    finally:
        notifier.close()
        logging.getLogger("facedrop").removeHandler(console)
        teardown_logging()


def cmd_run(args: argparse.Namespace) -> int:
    """``facedrop run JOB_DIR``: one job now; the job folder is left as it was."""
    config = load_config(args.config)
    folder = args.job_dir.resolve()
    if not folder.is_dir():
        raise InputError("JOB_DIR is not a folder", fix="give a job folder", file=folder)
    pipeline = pipeline_factory()(config)
    require_prerequisites(pipeline, job_needs(folder, config))  # every gap at once, in order
    out = reserve_dir((args.out or config.paths.outbox).resolve(), folder.name)
    console = Console()
    write_status(out, "running", job=folder.name, stage="starting", progress=0.0, attempt=1)
    started = time.monotonic()
    try:
        with _progress_bars(console) as progress_fn:
            result = execute_job(
                folder,
                out,
                folder.name,
                config,
                pipeline,
                progress_fn,
                CancelToken(),
            )
    except Exception as err:
        remove_partials(out)
        message = err.user_message() if isinstance(err, FacedropError) else f"{err!r}\n"
        write_atomic(out / "error.txt", message)
        write_status(out, "failed", job=folder.name, error=message.splitlines()[0])
        raise
    finally:
        shutil.copytree(folder, out / "input", dirs_exist_ok=True)  # a copy: run moves nothing
    write_status(
        out,
        "done",
        job=folder.name,
        video=result.video.name,
        seconds=round(time.monotonic() - started, 3),
    )
    console.print(result.record.to_table(), highlight=False)
    console.print(f"[bold green]Done:[/] {result.video}")
    return 0


class _progress_bars:  # noqa: N801 -- used as a context manager like a function
    """A rich progress display with one bar per stage; yields the ``ProgressFn``."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self):  # noqa: ANN204
        self._progress.start()
        return self._update

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _update(self, stage: str, fraction: float) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=1.0)
        self._progress.update(self._tasks[stage], completed=fraction)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def cmd_status(args: argparse.Namespace) -> int:
    """``facedrop status``: read the daemon's state (read-only) and print it."""
    config = load_config(args.config)
    console = Console()
    pid = running_daemon_pid(config.paths.state)
    console.print(
        f"daemon: [bold green]running[/] (pid {pid})"
        if pid
        else "daemon: [bold red]not running[/]",
        highlight=False,
    )
    console.print(f"inbox:  {config.paths.inbox}\noutbox: {config.paths.outbox}", highlight=False)
    waiting = _inbox_waiting(config.paths.inbox)
    if waiting:
        console.print(f"in the inbox, not yet claimed: {', '.join(waiting)}", highlight=False)
    if not (config.paths.state / DB_NAME).is_file():
        console.print("no jobs yet")
        return 0
    db = StateDB(config.paths.state, readonly=True)
    try:
        _print_jobs(console, db, args.recent)
    except sqlite3.OperationalError as err:
        if "no such table" not in str(err):
            raise
        console.print("no jobs yet")  # the daemon is creating its database right now
    finally:
        db.close()
    return 0


def _inbox_waiting(inbox: Path) -> list[str]:
    try:
        return sorted(p.name for p in inbox.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _print_jobs(console: Console, db: StateDB, recent: int) -> None:
    now = time.time()
    for row in db.jobs(JobState.RUNNING):
        console.print(
            f"running: [bold]{row.name}[/]  stage {row.stage or 'starting'}  "
            f"{100 * row.progress:.0f}%  attempt {row.attempts}  "
            f"started {_age(now - (row.started_at or now))}",
            highlight=False,
        )
    queued = db.jobs(JobState.QUEUED)
    console.print(
        f"queued ({len(queued)}): " + (", ".join(r.name for r in queued) if queued else "none"),
        highlight=False,
    )
    finished = db.jobs(JobState.DONE, JobState.FAILED, limit=recent, newest_first=True)
    if not finished:
        return
    table = Table(title="recent results", title_justify="left")
    for column in ("job", "result", "seconds", "attempts", "finished", "outbox folder / error"):
        table.add_column(column)
    for r in finished:
        seconds = (r.finished_at or now) - (r.started_at or r.claimed_at)
        detail = r.error if r.state is JobState.FAILED else r.outbox_dir.name
        table.add_row(
            r.name,
            r.state.value,
            f"{seconds:.1f}",
            str(r.attempts),
            _age(now - (r.finished_at or now)),
            detail,
        )
    console.print(table)


def _parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, each value read as YAML (``30`` is a number, ``true`` a bool)."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--set {pair!r} is not key=value", fix="e.g. --set fps=30")
        try:
            data[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise InputError(f"--set {pair!r}: the value is not valid") from err
        _check_setting(pair, key.strip(), data[key.strip()])
    return data


def _check_setting(pair: str, key: str, value: Any) -> None:
    """A job.yaml check, reworded for the command line: it names the --set, not a file."""
    try:
        validate_job_keys({key: value}, "--set")
    except InputError as err:
        example = err.fix.removeprefix("write it like this: ")
        fix = f"e.g. --set {example.replace(': ', '=', 1)}" if example != err.fix else err.fix
        raise InputError(f"--set {pair}: {err.problem.replace(' in job.yaml', '')}",
                         fix=fix) from err


def _check_file(path: Path, exts: frozenset[str], what: str) -> Path:
    if not path.is_file():
        raise InputError(f"the {what} does not exist", file=path)
    if path.suffix.lower() not in exts:
        raise InputError(f"the {what} must be one of {', '.join(sorted(exts))}", file=path)
    return path


def cmd_submit(args: argparse.Namespace) -> int:
    """``facedrop submit``: build the job in a hidden folder in the inbox, then rename it in."""
    config = load_config(args.config)
    face = _check_file(args.face, IMAGE_EXT, "face photo")
    audio = _check_file(args.audio, AUDIO_EXT, "audio file")
    data: dict[str, Any] = {"face": face.name, "audio": audio.name}
    driving = None
    if args.driving:
        candidate = Path(args.driving)
        if candidate.suffix.lower() in VIDEO_EXT:
            driving = _check_file(candidate, VIDEO_EXT, "driving video")
            data["driving"] = driving.name
        else:
            data["driving"] = args.driving
    data.update(_parse_settings(args.settings))
    validate_job_keys(data, "--set")
    if face.name == audio.name or (driving and driving.name in (face.name, audio.name)):
        raise InputError("the files must have different names")
    name = args.name or audio.stem
    if not name or name.startswith(".") or "/" in name:
        raise InputError(f"--name {name!r} is not a usable folder name")
    inbox = config.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".partial-{name}-{os.getpid()}-{time.time_ns():x}"
    partial.mkdir()
    try:
        for src in (face, audio, driving):
            if src is not None:
                shutil.copy2(src, partial / src.name)
        write_atomic(partial / JOB_FILE, yaml.safe_dump(data, sort_keys=False))
        dest = _rename_unique(partial, inbox, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    Console().print(f"submitted [bold]{dest.name}[/] to {inbox}", highlight=False)
    return 0


def _rename_unique(partial: Path, inbox: Path, name: str) -> Path:
    """Rename the finished job folder into the inbox under a name no other folder has."""
    for n in range(1, 1000):
        dest = inbox / (name if n == 1 else f"{name} ({n})")
        if dest.exists():
            continue
        try:
            os.rename(partial, dest)  # fails if dest appeared meanwhile (non-empty folder)
        except OSError:
            continue
        return dest
    raise InputError(f"no free job name for {name} in the inbox", file=inbox)
