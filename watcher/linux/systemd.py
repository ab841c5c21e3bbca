"""The facedrop ``systemd --user`` units and the plan that installs or removes them.

``facedrop.service`` runs ``facedrop watch``; ``facedrop-worker.service`` runs a fleet's
``facedrop worker``. Both are ``Type=notify``: systemd counts the service as started after the
first pass of its main loop says ``READY=1`` (``watcher.sdnotify``), and restarts it when the
loop stops pinging for ``WatchdogSec`` or the process fails (``Restart=on-failure``; a clean stop
stays stopped, as the LaunchAgent's ``KeepAlive = {SuccessfulExit: false}``).
``TimeoutStopSec`` is longer than the daemon's ``shutdown_timeout`` and than the worker's
longest graceful stop, so a job stops cleanly and stays retryable before anything is killed;
``KillMode=mixed`` sends SIGTERM to facedrop alone and SIGKILL to whatever is left after it.

Paths under the home folder are written with systemd's ``%h`` specifier, so a unit reads the
same for every user. Installing, removing and restarting are a ``Plan`` of plain steps (write a
file, remove a file, run a command) carried out through an injectable runner: ``--dry-run``
prints exactly what a real run does, and tests use stand-in ``systemctl`` and ``loginctl``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.atomic import write_text_atomic
from pipeline.errors import FacedropError

UNIT = "facedrop.service"
WORKER_UNIT = "facedrop-worker.service"
ENV_CONFIG = "FACEDROP_CONFIG"  # as in watcher.config (not imported: this module stays light)
STOP_MARGIN = 10  # seconds TimeoutStopSec gives beyond facedrop's own graceful stop
# The fleet worker's stop beyond its consumer's: its loop wakes within a second, then it drops
# its card in Redis and closes the shared storage.
WORKER_STOP_EXTRA = 5
WATCHDOG_MIN = 120  # a main-loop pass that takes this long is a hang, not work
START_TIMEOUT = 300  # to READY=1: opening and reconciling the state, finding the device
RESTART_SEC = 5
START_LIMIT_INTERVAL = 600  # at most START_LIMIT_BURST starts in this many seconds: a unit
START_LIMIT_BURST = 5  # that cannot start (say, a broken install) does not spin forever
SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "Result",
                   "UnitFileState")
NO_BUS = ("Failed to connect to bus", "No medium found", "$DBUS_SESSION_BUS_ADDRESS")

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


class ServiceError(FacedropError):
    """A systemctl step failed."""

    title = "systemd service problem"


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """Everything the unit says."""

    name: str
    description: str
    program: tuple[str, ...]
    working_dir: Path
    stop_timeout: int
    watchdog: int
    environment: Mapping[str, str] = field(default_factory=dict)
    reloads: bool = False  # the daemon takes SIGHUP as "reload"; the fleet worker does not


def unit_interpreter() -> str:
    """The interpreter for ExecStart: this one, by its venv path when in a venv (a symlink that
    still finds the venv's packages; its real binary would not)."""
    return os.path.abspath(sys.executable)


def graceful_stop(shutdown_timeout: float, *, worker: bool) -> int:
    """The longest facedrop takes to stop after SIGTERM, in whole seconds.

    The daemon: its ``shutdown_timeout``. The fleet worker: dramatiq's ``Worker.stop`` waits up
    to that long for its job thread and then again for its consumer, and the worker then drops
    its card and closes the storage.
    """
    seconds = math.ceil(shutdown_timeout)
    return 2 * seconds + WORKER_STOP_EXTRA if worker else seconds


def stop_timeout(shutdown_timeout: float, *, worker: bool) -> int:
    """TimeoutStopSec: facedrop's longest graceful stop plus a margin."""
    return graceful_stop(shutdown_timeout, worker=worker) + STOP_MARGIN


def watchdog_seconds(shutdown_timeout: float, rescan_seconds: float, *, worker: bool) -> int:
    """WatchdogSec: longer than any healthy pause of the main loop.

    The daemon's loop waits at most ``rescan_seconds`` between passes (twice that is allowed);
    the worker's may spend a whole graceful stop of its consumer when it stops taking jobs.
    """
    if worker:
        return max(WATCHDOG_MIN, stop_timeout(shutdown_timeout, worker=True))
    return max(WATCHDOG_MIN, math.ceil(2 * rescan_seconds))


def build_spec(*, shutdown_timeout: float, rescan_seconds: float, home: Path,
               config_path: Path | None = None, env_config: str | None = None,
               python: str | None = None, command: tuple[str, ...] = ("watch",)) -> UnitSpec:
    """The unit for ``python -m watcher.cli COMMAND`` with the installing shell's config layers.

    ``env_config`` (that shell's ``$FACEDROP_CONFIG``) goes into the environment, ``config_path``
    (``--config``) onto the command line, both absolute: the unit works in the home folder.
    """
    worker = command[0] == "worker"
    env = {"PYTHONUNBUFFERED": "1"}  # log lines reach the journal as they are written
    if env_config:
        env[ENV_CONFIG] = _absolute(env_config)
    program: tuple[str, ...] = (python or unit_interpreter(), "-m", "watcher.cli", *command)
    if config_path is not None:
        program += ("--config", _absolute(config_path))
    return UnitSpec(
        name=WORKER_UNIT if worker else UNIT,
        description="facedrop fleet worker" if worker else "facedrop watch-folder daemon",
        program=program,
        working_dir=home,
        stop_timeout=stop_timeout(shutdown_timeout, worker=worker),
        watchdog=watchdog_seconds(shutdown_timeout, rescan_seconds, worker=worker),
        environment=env,
        reloads=not worker,
    )


def _absolute(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


# ---- the unit file ---------------------------------------------------------------------------
def _specifiers(text: str) -> str:
    """Escape what systemd would expand: ``%`` specifiers (and ``$`` in command lines)."""
    return text.replace("%", "%%")


def _home_path(path: str | Path, home: Path) -> str:
    """``path`` with the home folder as ``%h`` (the rest escaped)."""
    path = Path(path)
    if path == home:
        return "%h"
    if path.is_relative_to(home):
        return "%h/" + _specifiers(str(path.relative_to(home)))
    return _specifiers(str(path))


def _quoted(word: str) -> str:
    """A word of a command line or assignment, double-quoted when it has to be."""
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_word(word: str, home: Path) -> str:
    text = _home_path(word, home) if word.startswith("/") else _specifiers(word)
    return _quoted(text.replace("$", "$$"))


def _assignment(key: str, value: str, home: Path) -> str:
    return f"{key}={_home_path(value, home) if value.startswith('/') else _specifiers(value)}"


def render_unit(spec: UnitSpec, home: Path) -> str:
    """The unit file's text (the same spec always gives the same text)."""
    reload = (["# 'systemctl --user reload': a clean stop, then the log reopened and the config "
               "reloaded", "ExecReload=/bin/kill -HUP $MAINPID"] if spec.reloads else [])
    execstart = " ".join(_exec_word(word, home) for word in spec.program)
    env = [f"Environment={_quoted(_assignment(k, v, home))}"
           for k, v in sorted(spec.environment.items())]
    stem = spec.name.removesuffix(".service")
    return "\n".join([
        f"# {spec.description}: a systemd user service written by 'facedrop service install'.",
        f"# Logs: journalctl --user -u {stem}.  Remove: facedrop service uninstall"
        + (" --worker" if spec.name == WORKER_UNIT else ""),
        "[Unit]",
        f"Description={spec.description}",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        "# Started once the main loop's first pass says READY=1; it pings WATCHDOG=1 every pass.",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={execstart}",
        *reload,
        f"WorkingDirectory={_home_path(spec.working_dir, home)}",
        *env,
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"WatchdogSec={spec.watchdog}",
        f"TimeoutStartSec={START_TIMEOUT}",
        "# SIGTERM to facedrop alone: it stops its job and leaves it queued within this time;",
        "# anything still running after it is killed.",
        f"TimeoutStopSec={spec.stop_timeout}",
        "KillMode=mixed",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ])


def unit_dir(home: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The user's unit folder: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/...``)."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else home / ".config") / "systemd" / "user"


# ---- the plan --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Command:
    """One call; ``tolerate_missing`` accepts "no such unit" (disabling what is not there)."""

    args: tuple[str, ...]
    tolerate_missing: bool = False

    def line(self) -> str:
        return " ".join(self.args)


@dataclass(frozen=True, slots=True)
class WriteFile:
    path: Path
    text: str

    def line(self) -> str:
        return f"# {self.path}\n{self.text.rstrip(chr(10))}"


@dataclass(frozen=True, slots=True)
class RemoveFile:
    path: Path

    def line(self) -> str:
        return f"rm -f {self.path}"


Step = Command | WriteFile | RemoveFile


def _systemctl(*args: str, tolerate_missing: bool = False) -> Command:
    return Command(("systemctl", "--user", *args), tolerate_missing=tolerate_missing)


def install_plan(spec: UnitSpec, path: Path, home: Path) -> list[Step]:
    """Write the unit, reload, enable at login, (re)start now: idempotent."""
    return [WriteFile(path, render_unit(spec, home)), _systemctl("daemon-reload"),
            _systemctl("enable", spec.name), _systemctl("restart", spec.name)]


def uninstall_plan(name: str, path: Path) -> list[Step]:
    """Stop and disable (tolerating a unit that is not there), remove the file, reload."""
    return [_systemctl("disable", "--now", name, tolerate_missing=True), RemoveFile(path),
            _systemctl("daemon-reload")]


def restart_plan(name: str) -> list[Step]:
    return [_systemctl("restart", name)]


def status_plan(name: str) -> list[Step]:
    return [_systemctl("show", name, "--property=" + ",".join(SHOW_PROPERTIES),
                       tolerate_missing=True)]


def run_command(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner: the program found on PATH, output captured, bounded in time."""
    # A restart waits for READY=1, which may take up to TimeoutStartSec.
    return subprocess.run(list(args), capture_output=True, text=True,
                          timeout=START_TIMEOUT + 30, check=False)


def _missing(result: subprocess.CompletedProcess[str]) -> bool:
    text = (result.stdout or "") + (result.stderr or "")
    return "not loaded" in text or "does not exist" in text or "not found" in text


def execute(plan: Sequence[Step], runner: Runner = run_command) -> list[
        subprocess.CompletedProcess[str]]:
    """Carry out the plan; raise ``ServiceError`` on the first real failure."""
    results = []
    for step in plan:
        if isinstance(step, WriteFile):
            step.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(step.path, step.text)
            continue
        if isinstance(step, RemoveFile):
            step.path.unlink(missing_ok=True)
            continue
        try:
            result = runner(step.args)
        except FileNotFoundError:
            raise ServiceError(f"'{step.args[0]}' is not installed: this system does not run "
                               "systemd", fix="run 'facedrop watch' under your own service "
                               "manager, or install systemd") from None
        if result.returncode != 0 and not (step.tolerate_missing and _missing(result)):
            raise _failure(step, result)
        results.append(result)
    return results


def _failure(step: Command, result: subprocess.CompletedProcess[str]) -> ServiceError:
    output = (result.stderr or result.stdout or "").strip().splitlines()
    problem = f"'{step.line()}' failed with exit status {result.returncode}" + (
        f": {output[-1]}" if output else "")
    if any(marker in "\n".join(output) for marker in NO_BUS):
        return ServiceError(problem, fix="this login has no systemd user manager (e.g. after "
                            "'su' or 'sudo -u'): log in as this user directly (ssh or the "
                            "console), or run 'sudo loginctl enable-linger $USER' and log in "
                            "again")
    return ServiceError(problem, fix="see 'journalctl --user -xe' and 'systemd-analyze --user "
                        "verify' on the unit file")


def properties(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``systemctl show``'s ``KEY=VALUE`` lines as a dict."""
    pairs = (line.partition("=") for line in (result.stdout or "").splitlines())
    return {key: value for key, sep, value in pairs if sep}


def lingering(user: str, runner: Runner = run_command) -> bool | None:
    """Does the user's manager run without a login session (None: cannot tell)?"""
    try:
        result = runner(("loginctl", "show-user", user, "--property=Linger", "--value"))
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() == "yes"
