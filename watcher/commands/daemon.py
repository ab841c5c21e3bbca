"""CLI commands around the job lifecycle: ``watch``, ``run``, ``status``, ``submit``."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.errors import FacedropError, InputError
from pipeline.prerequisites import require as require_prerequisites
from pipeline.spec import CancelToken, ProgressFn
from watcher.attempt import AttemptRequest, Ending, Verdict, attempt, shown_inputs
from watcher.commands.fleet import print_workers
from watcher.config import Config, as_worker, load_config
from watcher.console import make_console, print_json, print_table
from watcher.daemon import Daemon, pipeline_factory
from watcher.estimate import job_estimate
from watcher.faults import Places
from watcher.jobfolder import (
    AUDIO_EXT,
    IMAGE_EXT,
    JOB_FILE,
    VIDEO_EXT,
    parse_job_folder,
    validate_job_keys,
)
from watcher.jobneeds import job_needs
from watcher.jobqueue import Job, JobState
from watcher.killpoints import crash_hook_from_env
from watcher.logs import FORMAT as LOG_FORMAT
from watcher.logs import setup_logging, teardown_logging
from watcher.macos.notify import make_notifier
from watcher.outbox import (
    Outbox,
    ProgressThrottle,
    first_line,
    remove_partials,
    status_fields,
)
from watcher.progress_lines import StageLines
from watcher.rates import RateStore, remember, spoken_duration
from watcher.sdnotify import ServiceNotifier
from watcher.status import config_status
from watcher.submit import (
    JobFile,
    check_job_name,
    check_local_file,
    copy_from,
    job_settings,
    submit_job,
)
from watcher.supervisor import make_runner


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``watch``, ``run``, ``status`` and ``submit``."""
    watch = sub.add_parser("watch", help="run the daemon in the foreground (watch the inbox)")
    watch.set_defaults(func=cmd_watch)

    run = sub.add_parser("run", help="run one job folder now, with progress bars")
    run.add_argument("job_dir", type=Path, metavar="JOB_DIR")
    run.add_argument("--out", type=Path, default=None, help="output root (default: the outbox)")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="show the queue, the running job and recent results")
    status.add_argument("--recent", type=int, default=10, help="how many finished jobs to list")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
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
    """``facedrop watch``: the daemon, in the foreground, until SIGTERM/SIGINT.

    SIGHUP stops the daemon cleanly (the running job goes back to the queue, uncounted), then
    the log is reopened and the configuration reloaded, and it starts again in this process.
    A configuration that no longer loads is reported and the previous one kept.
    """
    config = load_config(args.config)
    note = ""
    while True:
        daemon = _watch_once(config, note)
        if not daemon.reload_requested:
            return 0
        try:
            config, note = load_config(args.config), "SIGHUP: configuration reloaded"
        except FacedropError as err:
            note = (f"SIGHUP: the configuration does not load, the previous one is kept: "
                    f"{err.problem}")


def _watch_once(config: Config, note: str) -> Daemon:
    setup_logging(config.paths.logs)  # (re)opens the log file
    console = logging.StreamHandler()  # launchd sends stderr to its own log file too
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger("facedrop").addHandler(console)
    if note:
        logging.getLogger("facedrop.daemon").warning(note)
    notifier = make_notifier(config.daemon.notify)
    service = ServiceNotifier.from_environ()  # silent unless systemd started us (Type=notify)
    try:
        daemon = Daemon(as_worker(config), pipeline_factory(), notifier=notifier, service=service,
                        crash=crash_hook_from_env())
        daemon.run()
        return daemon
    finally:
        service.close()
        notifier.close()
        logging.getLogger("facedrop").removeHandler(console)
        teardown_logging()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def cmd_run(args: argparse.Namespace) -> int:
    """``facedrop run JOB_DIR``: one job now; the job folder is left as it was.

    The folder is validated before anything is written: a folder that is not a job (no
    ``job.yaml``) fails without touching the outbox; a job with a problem gets an outbox folder
    with ``error.txt`` and a copy of its files, as the daemon would give it. The job runs as one
    attempt (``watcher.attempt``) in a worker child: a crash there fails the job with an
    ``error.txt`` saying what crashed. SIGTERM, SIGINT or SIGHUP stop the job and mark it failed;
    if this process is killed outright, the child marks it failed before it exits.
    """
    config = load_config(args.config)
    folder = args.job_dir.resolve()
    if not folder.is_dir():
        raise InputError("JOB_DIR is not a folder", fix="give a job folder", file=folder)
    ref = pipeline_factory()
    pipeline = ref(config)  # built, not loaded: the models load in the worker child
    if not (folder / JOB_FILE).is_file():
        parse_job_folder(folder, config, folder.name)  # not a job: says why, writes nothing
    require_prerequisites(pipeline, job_needs(folder, config))  # every gap at once, fix order
    outbox = Outbox((args.out or config.paths.outbox).resolve())
    started = time.time()
    job = Job(
        id=0, name=folder.name, payload="", outbox="", state=JobState.RUNNING, attempts=1,
        counted=1, stage="", progress=0.0, error="", video="", realtime_factor=None,
        claimed_at=started, started_at=started, finished_at=None, not_before=0.0,
    )
    console = Console()
    rates = RateStore(config.paths.state)
    console.print(f"estimate: {job_estimate(folder, rates)['text']}", highlight=False)
    throttle = ProgressThrottle()
    places = Places(config.paths.inbox, config.paths.outbox, config.paths.state,
                    config.paths.weights)
    cancel = CancelToken()
    # From here a stop signal ends the job as failed, never leaving status.json "running".
    previous = {sig: signal.signal(sig, lambda signum, frame: cancel.cancel())
                for sig in STOP_SIGNALS}
    runner = make_runner(ref)
    try:
        # The child is up before status.json says running: it finishes the status if this
        # process is killed outright.
        runner.start()
        job = replace(job, outbox=outbox.reserve(folder.name))
        out = outbox.folder(job.outbox)
        outbox.publish(job)

        def progress(stage: str, fraction: float) -> None:
            if throttle.due(stage, fraction):
                outbox.publish(replace(job, stage=stage, progress=fraction))

        request = AttemptRequest(folder.name, folder, out, config, shown_inputs(out),
                                 orphan_status=status_fields(job))
        display = _progress_bars if console.is_terminal else _progress_lines
        with display(console, progress) as progress_fn:
            ending = attempt(runner, request, progress_fn, cancel, counted=1, max_attempts=1,
                             places=places, log_hint="the messages above")
    finally:
        runner.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if ending.verdict is not Verdict.DONE:
        raise _run_failed(outbox, job, folder, ending)
    assert ending.finished is not None
    remember(rates, ending.finished.record)
    outbox.copy_inputs(out, folder)  # a copy: run moves nothing
    record = ending.finished.record
    outbox.publish(replace(
        job, state=JobState.DONE, finished_at=time.time(), video=ending.finished.video,
        realtime_factor=record.realtime_factor,
    ))
    console.print(record.to_table(), highlight=False)
    console.print(f"[bold green]Done:[/] {out / ending.finished.video}")
    return 0


def _run_failed(outbox: Outbox, job: Job, folder: Path, ending: Ending) -> FacedropError:
    """Finish the outbox folder of a failed run; the error to exit with."""
    err = ending.error
    if ending.verdict is Verdict.CANCELLED:
        err = FacedropError("facedrop run was stopped before the job finished",
                            fix="run the job again")
    elif ending.verdict is Verdict.GIVE_BACK and ending.fault is not None:
        if not isinstance(err, FacedropError):
            err = FacedropError(ending.fault.reason, fix=ending.fault.fix)
    elif not isinstance(err, FacedropError):
        err = FacedropError(first_line(ending.message))
    failed = ending.verdict in (Verdict.FAILED, Verdict.RETRY)
    message = ending.message if failed and ending.message else err.user_message()
    out = outbox.folder(job.outbox)
    remove_partials(out)
    outbox.write_error(out, message)
    outbox.copy_inputs(out, folder)
    outbox.publish(replace(job, state=JobState.FAILED, finished_at=time.time(), error=message))
    return err


class _progress_bars:  # noqa: N801 -- used as a context manager like a function
    """A rich progress display with one bar per stage; yields the ``ProgressFn``."""

    def __init__(self, console: Console, also: ProgressFn) -> None:
        self._also = also
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
        self._also(stage, fraction)


class _progress_lines:  # noqa: N801 -- the piped counterpart of _progress_bars
    """One line per stage start and end, and a progress line at most every 10 s."""

    def __init__(self, console: Console, also: ProgressFn) -> None:
        self._also = also
        self._lines = StageLines(lambda text: console.print(text, highlight=False,
                                                            markup=False))

    def __enter__(self):  # noqa: ANN204
        return self._update

    def __exit__(self, *exc: object) -> None:
        self._lines.close()

    def _update(self, stage: str, fraction: float) -> None:
        self._lines(stage, fraction)
        self._also(stage, fraction)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def cmd_status(args: argparse.Namespace) -> int:
    """``facedrop status``: read the daemon's state (read-only) and print it."""
    config = load_config(args.config)
    report = config_status(config, args.recent)
    fleet = report.get("fleet")
    if args.json:
        print_json(report)
        return 0
    console = make_console()
    pid = report["daemon"]["pid"]
    console.print(
        f"daemon: [bold green]running[/] (pid {pid})"
        if pid
        else "daemon: [bold red]not running[/]",
        highlight=False,
    )
    console.print(f"inbox:  {config.paths.inbox}\noutbox: {config.paths.outbox}", highlight=False)
    for fault in report["paused"]:
        fix = f" (fix: {fault['fix']})" if fault["fix"] else ""
        console.print(f"[bold yellow]paused[/] ({fault['kind']}): {fault['reason']}{fix}",
                      highlight=False, markup=True)
    for entry in report["inbox"]:
        console.print(f"inbox entry {entry['name']!r}: {entry['verdict']}"
                      + (f", {entry['reason']}" if entry["reason"] else ""), highlight=False,
                      markup=False)
    if report["inbox_more"]:
        console.print(f"... and {report['inbox_more']} more inbox entries (not listed)",
                      highlight=False)
    if fleet is not None:
        print_workers(console, fleet)
    if not any(report["jobs"].values()):
        console.print("no jobs yet")
        return 0
    _print_jobs(console, report["jobs"])
    return 0


def _left(job: dict[str, Any]) -> str:
    """The running job's time left, or why there is no estimate (its own line: with a long job
    name on the line above, one line would pass 200 characters)."""
    if "left_seconds" not in job:
        return f"    estimate: {job['estimate']['text']}" if "estimate" in job else ""
    left = job["left_seconds"]
    return f"    about {spoken_duration(left)} left" if left > 0 else "    finishing any moment"


def _print_jobs(console: Console, jobs: dict[str, list[dict[str, Any]]]) -> None:
    now = time.time()
    for job in jobs["running"]:
        console.print(
            f"running: [bold]{job['name']}[/]  stage {job['stage'] or 'starting'}  "
            f"{100 * job['progress']:.0f}%  attempt {job['attempts']}  "
            f"started {_age(now - (job['started_at'] or now))}",
            highlight=False,
        )
        if _left(job):
            console.print(_left(job), highlight=False, markup=False)
    queued = jobs["queued"]
    console.print(f"queued ({len(queued)}): " + ("" if queued else "none"), highlight=False)
    for j in queued:
        console.print(f"  {j['name']}: {j['estimate']['text']}", highlight=False, markup=False)
    if not jobs["finished"]:
        return
    # Piped, one line per job with its outbox folder or error below it (an error is free text).
    print_table(console, "recent results",
                ("job", "result", "seconds", "attempts", "finished", "outbox folder / error"),
                [(j["name"], _result(j), f"{j['seconds']:.1f}", str(j["attempts"]),
                  _age(now - (j["finished_at"] or now)),
                  j["error"] if j["state"] == "failed" else j["outbox"])
                 for j in jobs["finished"]],
                prose=("outbox folder / error",))


def _result(job: dict[str, Any]) -> str:
    """``done``, ``done — check lip sync``, ``done — not scored``, ``failed``."""
    quality = job.get("quality") or {}
    headline = quality.get("headline", "")
    return f"{job['state']} — {headline}" if headline and headline != "ok" else job["state"]


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


def cmd_submit(args: argparse.Namespace) -> int:
    """``facedrop submit``: build the job in a hidden folder in the inbox, then rename it in."""
    config = load_config(args.config)
    face = check_local_file(args.face, IMAGE_EXT, "face photo")
    audio = check_local_file(args.audio, AUDIO_EXT, "audio file")
    files = [JobFile(face.name, copy_from(face)), JobFile(audio.name, copy_from(audio))]
    driving = None
    if args.driving:
        candidate = Path(args.driving)
        if candidate.suffix.lower() in VIDEO_EXT:
            clip = check_local_file(candidate, VIDEO_EXT, "driving video")
            files.append(JobFile(clip.name, copy_from(clip)))
            driving = clip.name
        else:
            driving = args.driving
    data = job_settings(face.name, audio.name, driving, _parse_settings(args.settings))
    name = args.name or audio.stem
    try:
        check_job_name(name)
    except InputError:
        raise InputError(f"--name {name!r} is not a usable folder name") from None
    dest = submit_job(config, name, files, data)
    make_console().print(f"submitted [bold]{dest.name}[/] to {config.paths.inbox}", highlight=False)
    return 0
