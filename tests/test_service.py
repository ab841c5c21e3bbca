"""The systemd user service: the generated units pass ``systemd-analyze verify`` without a
word, say what the service contract needs, and ``service install|status|restart|uninstall`` make
exactly the systemctl calls (through a recording stand-in on PATH); the CLI picks the manager."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from watcher.commands.service import native_manager, systemd_main, unit_spec
from watcher.linux import systemd as sd

FAKE_SYSTEMCTL = r"""#!/bin/sh
# Records its arguments; keeps an "active" flag per unit like the user manager would.
echo "$*" >> "$SYSTEMCTL_LOG"
shift  # --user
units="$HOME/.config/systemd/user"
case "$1" in
  daemon-reload) exit 0 ;;
  enable) [ -f "$units/$2" ] && exit 0
          echo "Failed to enable unit: Unit file $2 does not exist." >&2; exit 1 ;;
  restart) [ -f "$units/$2" ] || { echo "Failed to restart $2: Unit $2 not found." >&2; exit 5; }
           touch "$SYSTEMCTL_LOG.$2.active"; exit 0 ;;
  disable) rm -f "$SYSTEMCTL_LOG.$3.active"; [ -f "$units/$3" ] && exit 0
           echo "Failed to disable unit: Unit file $3 does not exist." >&2; exit 1 ;;
  show) if [ ! -f "$units/$2" ]; then
          printf 'LoadState=not-found\nActiveState=inactive\n'; exit 0; fi
        state=inactive; [ -e "$SYSTEMCTL_LOG.$2.active" ] && state=active
        printf 'LoadState=loaded\nActiveState=%s\nSubState=running\nMainPID=4242\n' "$state"
        printf 'NRestarts=0\nResult=success\nUnitFileState=enabled\n'; exit 0 ;;
esac
exit 64
"""

FAKE_LOGINCTL = """#!/bin/sh
echo "loginctl $*" >> "$SYSTEMCTL_LOG"
echo "$LINGER"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home with recording ``systemctl`` and ``loginctl`` first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("systemctl", FAKE_SYSTEMCTL), ("loginctl", FAKE_LOGINCTL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SYSTEMCTL_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LINGER", "no")
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def _calls(home: Path) -> list[str]:
    log = home.parent / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return calls


def _run(action: str, home: Path, *, dry_run: bool = False, system: str = "linux",
         config: Path | None = None, worker: tuple[str, ...] = ()) -> tuple[int, str]:
    console = Console(record=True, width=400)
    code = systemd_main(action, config_path=config, dry_run=dry_run, console=console,
                        system=system, home=home, user="ada", worker=worker)
    return code, console.export_text()


def _keys(unit: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def _verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("worker", [(), ("worker", "--device", "cuda:1")])
def test_generated_units_pass_systemd_analyze_verify_without_a_word(
        home: Path, tmp_path: Path, worker: tuple[str, ...]) -> None:
    assert shutil.which("systemd-analyze"), "Debian's systemd package (apt-get install systemd)"
    odd = home / "facedrop configs" / "100% mine.yaml"  # a space and a specifier to escape
    odd.parent.mkdir()
    odd.write_text("daemon:\n  shutdown_timeout: 45\n")
    spec = unit_spec(odd, home, {}, worker=worker)
    unit = tmp_path / spec.name
    unit.write_text(sd.render_unit(spec, home))
    result = _verify(unit, tmp_path)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stderr + result.stdout)


def test_the_unit_says_what_the_service_contract_needs(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("daemon:\n  shutdown_timeout: 45\n  rescan_seconds: 100\n")
    daemon = unit_spec(cfg, home, {})
    worker = unit_spec(cfg, home, {}, worker=("worker",))
    d, w = _keys(sd.render_unit(daemon, home)), _keys(sd.render_unit(worker, home))
    for keys in (d, w):
        assert keys["Type"] == ["notify"] and keys["NotifyAccess"] == ["main"]
        assert keys["Restart"] == ["on-failure"] and keys["KillMode"] == ["mixed"]
        assert keys["WantedBy"] == ["default.target"]
        assert keys["WorkingDirectory"] == ["%h"]
        assert keys["Environment"] == ["PYTHONUNBUFFERED=1"]
    assert d["ExecStart"] == [f"{sys.executable} -m watcher.cli watch --config {cfg.resolve()}"]
    assert w["ExecStart"] == [f"{sys.executable} -m watcher.cli worker --config {cfg.resolve()}"]
    assert int(d["WatchdogSec"][0]) >= 2 * 100  # twice the daemon loop's longest wait
    daemon_stop, worker_stop = int(d["TimeoutStopSec"][0]), int(w["TimeoutStopSec"][0])
    assert daemon_stop > 45  # beyond the daemon's shutdown_timeout
    # beyond the worker's longest graceful stop: dramatiq waits for the job thread, then for
    # the consumer, each up to shutdown_timeout
    assert worker_stop > 2 * 45 + sd.WORKER_STOP_EXTRA
    assert int(w["WatchdogSec"][0]) >= worker_stop  # stopping its consumer is not a hang
    assert worker.name == sd.WORKER_UNIT and daemon.name == sd.UNIT
    # 'systemctl --user reload' sends the daemon SIGHUP (a clean stop, the config reloaded);
    # the fleet worker has no such meaning for SIGHUP, so its unit offers no reload
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"] and "ExecReload" not in w


def test_home_paths_use_percent_h_and_the_shells_config_layer_is_carried(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = home / ".config" / "facedrop" / "worker.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("")
    env_cfg = tmp_path / "env.yaml"
    env_cfg.write_text("daemon:\n  shutdown_timeout: 30\n")
    monkeypatch.setenv("FACEDROP_CONFIG", str(env_cfg))
    spec = unit_spec(mine, home, python=str(home / ".venv/bin/python"))
    keys = _keys(sd.render_unit(spec, home))
    assert keys["ExecStart"] == ["%h/.venv/bin/python -m watcher.cli watch --config "
                                 "%h/.config/facedrop/worker.yaml"]
    assert f"FACEDROP_CONFIG={env_cfg.resolve()}" in keys["Environment"]
    assert keys["TimeoutStopSec"] == [str(30 + sd.STOP_MARGIN)]  # the env layer was read


def test_install_status_restart_uninstall_call_systemctl_in_order(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = home / ".config/systemd/user" / sd.UNIT
    code, out = _run("install", home)
    assert code == 0, out
    assert _calls(home) == ["--user daemon-reload", f"--user enable {sd.UNIT}",
                            f"--user restart {sd.UNIT}",
                            "loginctl show-user ada --property=Linger --value"]
    assert "sudo loginctl enable-linger ada" in out  # no lingering: say what to run
    assert "journalctl --user -u facedrop -f" in out
    first = unit.read_text()
    assert _run("install", home)[0] == 0  # reinstall: same file, restarted
    assert unit.read_text() == first and not list(unit.parent.glob("*.tmp"))
    _calls(home)
    monkeypatch.setenv("LINGER", "yes")
    code, out = _run("status", home)
    assert code == 0 and "ActiveState = active" in out and "MainPID = 4242" in out
    assert "enable-linger" not in out and "Lingering is on" in out
    assert _calls(home)[0].startswith(f"--user show {sd.UNIT} --property=LoadState,")
    assert _run("restart", home)[0] == 0
    assert _calls(home) == [f"--user restart {sd.UNIT}"]
    assert _run("uninstall", home)[0] == 0
    assert _calls(home) == [f"--user disable --now {sd.UNIT}", "--user daemon-reload"]
    assert not unit.exists()
    assert _run("uninstall", home)[0] == 0  # nothing installed: still fine
    code, out = _run("status", home)
    assert code == 3 and "not installed" in out and "(absent)" in out


def test_restart_of_a_missing_unit_is_an_error_with_the_systemctl_line(home: Path) -> None:
    with pytest.raises(sd.ServiceError, match=r"systemctl --user restart facedrop-worker.service"
                                              r"' failed with exit status 5: .*not found"):
        _run("restart", home, worker=("worker",))


def test_a_login_without_a_user_manager_gets_the_fix(home: Path) -> None:
    def no_bus(args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 1, "", "Failed to connect to bus: No medium "
                                                        "found")

    with pytest.raises(sd.ServiceError) as caught:
        systemd_main("install", config_path=None, dry_run=False, console=Console(),
                     system="linux", home=home, user="ada", runner=no_bus)
    assert "enable-linger" in (caught.value.fix or "")


def test_dry_run_is_stable_complete_and_touches_nothing(home: Path) -> None:
    code, out = _run("install", home, dry_run=True, worker=("worker",))
    assert code == 0
    assert _run("install", home, dry_run=True, worker=("worker",))[1] == out
    path = home / ".config/systemd/user" / sd.WORKER_UNIT
    assert out.startswith(f"# {path}\n# facedrop fleet worker: ")
    assert out.endswith(f"systemctl --user daemon-reload\nsystemctl --user enable "
                        f"{sd.WORKER_UNIT}\nsystemctl --user restart {sd.WORKER_UNIT}\n")
    assert _calls(home) == [] and not (home / ".config").exists()


def test_not_linux_says_so_after_the_dry_run(home: Path) -> None:
    code, out = _run("install", home, dry_run=True, system="darwin")
    assert code == 1 and "Type=notify" in out and "a Linux feature" in out
    assert "LaunchAgent" in out
    assert _calls(home) == [] and not (home / ".config").exists()


def test_the_cli_picks_the_manager_and_launchagent_stays_the_launchagent(home: Path) -> None:
    assert native_manager("linux") == "systemd" and native_manager("darwin") == "launchd"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "watcher.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    unit = cli("service", "install", "--dry-run", "--manager", "systemd")
    assert unit.returncode == (0 if sys.platform.startswith("linux") else 1), unit.stderr
    assert f"ExecStart={sys.executable} -m watcher.cli watch" in unit.stdout
    assert max(len(line) for line in unit.stdout.splitlines()) < 200
    for args in (("service", "install", "--dry-run", "--manager", "launchd"),
                 ("launchagent", "install", "--dry-run")):
        agent = cli(*args)
        text = agent.stdout
        data = plistlib.loads(text[text.index("<?xml"):text.index("</plist>") + 8].encode())
        assert data["ProgramArguments"][-1] == "watch"
    assert _calls(home) == []


def test_device_without_worker_is_refused(home: Path) -> None:
    from watcher.cli import main

    assert main(["service", "install", "--dry-run", "--device", "cuda"]) == 2  # ConfigError
    assert _calls(home) == []
