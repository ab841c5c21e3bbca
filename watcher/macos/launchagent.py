"""The facedrop LaunchAgent: the plist (plistlib, written atomically) and the launchctl steps.

launchd starts the daemon at login and restarts it after a crash or a non-zero exit, but not
after a clean stop (``KeepAlive = {SuccessfulExit: false}``). ``ProcessType = Interactive``
lifts the CPU/IO/GPU throttling launchd applies to agents otherwise. launchd's PATH has no
Homebrew, so the plist sets one. ``ExitTimeOut`` (SIGTERM -> SIGKILL) is longer than the
daemon's own ``shutdown_timeout`` so a job can stop cleanly and stay retryable.

The steps are plain data (``Step``) run through an injectable runner, so ``--dry-run`` prints
exactly what a real run does and tests can use a stand-in ``launchctl``.
"""

from __future__ import annotations

import math
import os
import plistlib
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.atomic import write_bytes_atomic
from pipeline.errors import FacedropError

LABEL = "io.facedrop.daemon"
WORKER_LABEL = "io.facedrop.worker"  # launchagent install --worker: a fleet's facedrop worker
ENV_CONFIG = "FACEDROP_CONFIG"  # as in watcher.config (not imported: this module stays light)
THROTTLE_INTERVAL = 10  # launchd's minimum runtime before a respawn (its default, made explicit)
EXIT_MARGIN = 10  # seconds ExitTimeOut gives beyond the daemon's own shutdown timeout
LAUNCHD_PATH = "/opt/homebrew/bin:/opt/homebrew/sbin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
NOT_LOADED_CODES = (3, 113)  # "No such process", "Could not find service"
BOOTSTRAP_BUSY = 5  # "Input/output error": typically the old copy is still unloading

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


class LaunchAgentError(FacedropError):
    """A launchctl step failed."""

    title = "LaunchAgent problem"


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """Everything the plist says."""

    program: tuple[str, ...]
    working_dir: Path
    log_dir: Path
    exit_timeout: int
    environment: Mapping[str, str] = field(default_factory=dict)
    label: str = LABEL
    throttle_interval: int = THROTTLE_INTERVAL


def launch_interpreter() -> str:
    """The interpreter path for ProgramArguments.

    Outside a virtual environment this is ``realpath(sys.executable)``, the binary privacy
    grants belong to. Inside one it stays the venv's own ``python``: the real binary started
    directly would not see the venv's packages. Either way the kernel runs (and macOS
    attributes file access to) the real binary, ``watcher.macos.privacy.grant_binary()``.
    """
    if sys.prefix != sys.base_prefix:
        return os.path.abspath(sys.executable)
    return os.path.realpath(sys.executable)


def build_spec(*, shutdown_timeout: float, log_dir: Path, working_dir: Path,
               config_path: Path | None = None, env_config: str | None = None,
               python: str | None = None, label: str = LABEL,
               command: tuple[str, ...] = ("watch",)) -> AgentSpec:
    """The agent for ``python -m watcher.cli watch`` with facedrop's environment.

    The daemon reads the same config layers as the shell that installs it: ``env_config`` (that
    shell's ``$FACEDROP_CONFIG``) goes into the environment, ``config_path`` (``--config``)
    onto the command line, both as absolute paths (launchd's working folder is not the shell's).
    """
    env = {"PATH": LAUNCHD_PATH, "PYTORCH_ENABLE_MPS_FALLBACK": "1", "PYTHONUNBUFFERED": "1"}
    if env_config:
        env[ENV_CONFIG] = _absolute(env_config)
    program: tuple[str, ...] = (python or launch_interpreter(), "-m", "watcher.cli", *command)
    if config_path is not None:
        program += ("--config", _absolute(config_path))
    return AgentSpec(
        program=program,
        working_dir=working_dir,
        log_dir=log_dir,
        exit_timeout=math.ceil(shutdown_timeout) + EXIT_MARGIN,
        environment=env,
        label=label,
    )


def _absolute(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def code_dir() -> Path:
    """Where facedrop's own code is installed (what launchd's process must be able to read)."""
    return Path(__file__).resolve().parent.parent


def plist_dict(spec: AgentSpec) -> dict[str, object]:
    """The LaunchAgent property list as a dict (every value a plist type)."""
    return {
        "Label": spec.label,
        "ProgramArguments": list(spec.program),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash or a non-zero exit only
        "ThrottleInterval": spec.throttle_interval,
        "ExitTimeOut": spec.exit_timeout,
        "ProcessType": "Interactive",  # unset means throttled CPU, I/O and GPU work
        "EnvironmentVariables": dict(spec.environment),
        "WorkingDirectory": str(spec.working_dir),
        "StandardOutPath": str(spec.log_dir / f"{_log_stem(spec.label)}.out.log"),
        "StandardErrorPath": str(spec.log_dir / f"{_log_stem(spec.label)}.err.log"),
    }


def _log_stem(label: str) -> str:
    """launchd's log files: ``launchd.*`` for the daemon, ``<label>.*`` for other agents."""
    return "launchd" if label == LABEL else label


def render_plist(spec: AgentSpec) -> bytes:
    """The XML plist bytes (keys sorted: the same spec always gives the same bytes)."""
    return plistlib.dumps(plist_dict(spec), fmt=plistlib.FMT_XML, sort_keys=True)


def plist_path(home: Path, label: str = LABEL) -> Path:
    """``~/Library/LaunchAgents/<label>.plist``."""
    return home / "Library" / "LaunchAgents" / f"{label}.plist"


def write_plist(path: Path, data: bytes) -> None:
    """Write the plist atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)
    os.chmod(path, 0o644)  # launchd refuses a group- or world-writable agent


@dataclass(frozen=True, slots=True)
class Step:
    """One launchctl call; ``may_be_unloaded`` tolerates "not loaded" (bootout of nothing)."""

    args: tuple[str, ...]
    may_be_unloaded: bool = False

    def command(self) -> str:
        """The step as a shell line, for ``--dry-run`` and messages."""
        return " ".join(["launchctl", *self.args])


def service(uid: int, label: str = LABEL) -> str:
    """The service target in the logged-in user's GUI domain."""
    return f"gui/{uid}/{label}"


def install_steps(uid: int, plist: Path, label: str = LABEL) -> list[Step]:
    """Unload an older copy (if any), enable, load: idempotent."""
    return [Step(("bootout", service(uid, label)), may_be_unloaded=True),
            Step(("enable", service(uid, label))),
            Step(("bootstrap", f"gui/{uid}", str(plist)))]


def uninstall_steps(uid: int, label: str = LABEL) -> list[Step]:
    """Unload (tolerating "not loaded"); the caller removes the plist."""
    return [Step(("bootout", service(uid, label)), may_be_unloaded=True)]


def restart_steps(uid: int, label: str = LABEL) -> list[Step]:
    """Kill and restart the running agent."""
    return [Step(("kickstart", "-k", service(uid, label)))]


def status_steps(uid: int, label: str = LABEL) -> list[Step]:
    """launchd's view of the agent (state, pid, last exit code)."""
    return [Step(("print", service(uid, label)), may_be_unloaded=True)]


def run_launchctl(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner: ``launchctl`` found on PATH, output captured, 30 s limit."""
    return subprocess.run(["launchctl", *args], capture_output=True, text=True, timeout=30,
                          check=False)


def not_loaded(result: subprocess.CompletedProcess[str]) -> bool:
    """launchctl's ways of saying the service is not loaded."""
    text = (result.stdout or "") + (result.stderr or "")
    return result.returncode in NOT_LOADED_CODES or "No such process" in text \
        or "Could not find" in text


def run_steps(
    steps: Sequence[Step], runner: Runner = run_launchctl,
    sleep: Callable[[float], None] = time.sleep,
) -> list[subprocess.CompletedProcess[str]]:
    """Run each step; raise ``LaunchAgentError`` on a real failure.

    A bootstrap that fails with EIO right after a bootout is retried once after a second: the
    old copy may still be unloading.
    """
    results = []
    for step in steps:
        result = runner(step.args)
        if result.returncode == BOOTSTRAP_BUSY and step.args[0] == "bootstrap":
            sleep(1.0)
            result = runner(step.args)
        if result.returncode != 0 and not (step.may_be_unloaded and not_loaded(result)):
            output = (result.stderr or result.stdout or "").strip().splitlines()
            raise LaunchAgentError(
                f"'{step.command()}' failed with exit status {result.returncode}"
                + (f": {output[-1]}" if output else ""),
                fix="check the plist with 'plutil -lint', and that you are logged in at the "
                    "Mac's screen (the gui domain exists only then)")
        results.append(result)
    return results
