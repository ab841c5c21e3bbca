"""LaunchAgent: the plist's keys and types, a stable dry run, and the exact launchctl calls
(made through a recording stand-in ``launchctl`` on PATH) for install, reinstall, restart and
uninstall."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from watcher.commands.launchagent import launchagent_main
from watcher.macos import launchagent as la

UID = 501
TARGET = f"gui/{UID}/{la.LABEL}"

FAKE_LAUNCHCTL = """#!/bin/sh
# Records its arguments; keeps a "loaded" flag like launchd would.
echo "$*" >> "$LAUNCHCTL_LOG"
flag="$LAUNCHCTL_LOG.loaded"
case "$1" in
  bootout) if [ -e "$flag" ]; then rm "$flag"; exit 0; fi
           echo "Boot-out failed: 3: No such process" >&2; exit 3 ;;
  enable) exit 0 ;;
  bootstrap) if [ -e "$flag" ] || [ ! -f "$3" ]; then
               echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; fi
             touch "$flag"; exit 0 ;;
  kickstart) if [ -e "$flag" ]; then exit 0; fi
             echo "Could not find service" >&2; exit 113 ;;
  print) if [ -e "$flag" ]; then
           printf '%s\\n' "$2 = {" "	state = running" "	pid = 4242"; exit 0; fi
         echo "Could not find service" >&2; exit 113 ;;
esac
exit 64
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home with a recording launchctl first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "launchctl"
    fake.write_text(FAKE_LAUNCHCTL)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAUNCHCTL_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return home


def _calls(home: Path) -> list[str]:
    log = home.parent / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return calls


def _run(action: str, home: Path, *, dry_run: bool = False, system: str = "darwin",
         config: Path | None = None) -> tuple[int, str]:
    console = Console(record=True, width=400)
    code = launchagent_main(action, config_path=config, dry_run=dry_run, console=console,
                            system=system, home=home, uid=UID)
    return code, console.export_text()


def test_plist_has_every_key_with_the_right_types(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("daemon:\n  shutdown_timeout: 45\n")
    assert _run("install", home, config=cfg)[0] == 0
    plist = home / "Library/LaunchAgents" / f"{la.LABEL}.plist"
    data = plistlib.loads(plist.read_bytes())
    assert data["Label"] == la.LABEL
    assert data["ProgramArguments"] == [sys.executable, "-m", "watcher.cli", "watch",
                                        "--config", str(cfg.resolve())]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert type(data["ThrottleInterval"]) is int and data["ThrottleInterval"] >= 10
    assert type(data["ExitTimeOut"]) is int and data["ExitTimeOut"] > 45
    assert data["ProcessType"] == "Interactive"
    env = data["EnvironmentVariables"]
    assert env["PATH"].split(":")[:3] == ["/opt/homebrew/bin", "/opt/homebrew/sbin",
                                          "/usr/local/bin"]
    assert {"/usr/bin", "/bin", "/usr/sbin", "/sbin"} <= set(env["PATH"].split(":"))
    assert env["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    assert "FACEDROP_CONFIG" not in env  # not set in this shell: --config alone carries it
    assert data["WorkingDirectory"] == str(home)  # never the checkout: any install works
    logs = home / "Library/Logs/facedrop"
    assert Path(data["StandardOutPath"]).parent == logs and logs.is_dir()
    assert Path(data["StandardErrorPath"]).parent == logs
    assert not list(plist.parent.glob("*.tmp"))


def test_program_arguments_really_start_facedrop(home: Path) -> None:
    """The plist's interpreter, module and environment work (``--help`` instead of ``watch``)."""
    spec = la.build_spec(shutdown_timeout=20, log_dir=home, working_dir=Path.cwd())
    data = la.plist_dict(spec)
    env = {**os.environ, **data["EnvironmentVariables"]}  # type: ignore[dict-item]
    argv = [*data["ProgramArguments"][:-1], "--help"]  # type: ignore[index]
    out = subprocess.run(argv, cwd=str(data["WorkingDirectory"]), env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "watch" in out.stdout or "facedrop" in out.stdout


def test_install_reinstall_restart_uninstall_call_launchctl_in_order(home: Path) -> None:
    plist = home / "Library/LaunchAgents" / f"{la.LABEL}.plist"
    assert _run("install", home)[0] == 0
    assert _calls(home) == [f"bootout {TARGET}", f"enable {TARGET}",
                            f"bootstrap gui/{UID} {plist}"]
    first = plist.read_bytes()
    assert _run("install", home)[0] == 0  # reinstall: unload the loaded copy, load again
    assert _calls(home) == [f"bootout {TARGET}", f"enable {TARGET}",
                            f"bootstrap gui/{UID} {plist}"]
    assert plist.read_bytes() == first
    code, out = _run("status", home)
    assert code == 0 and "pid = 4242" in out
    assert _calls(home) == [f"print {TARGET}"]
    assert _run("restart", home)[0] == 0
    assert _calls(home) == [f"kickstart -k {TARGET}"]
    assert _run("uninstall", home)[0] == 0
    assert _calls(home) == [f"bootout {TARGET}"]
    assert not plist.exists()
    assert _run("uninstall", home)[0] == 0  # nothing loaded: still fine
    assert _calls(home) == [f"bootout {TARGET}"]
    code, out = _run("status", home)
    assert code == 3 and "not loaded" in out


def test_restart_of_a_missing_agent_is_an_error(home: Path) -> None:
    with pytest.raises(la.LaunchAgentError, match="kickstart -k .* exit status 113: "
                                                  "Could not find service"):
        _run("restart", home)


def test_dry_run_is_stable_complete_and_touches_nothing(home: Path) -> None:
    code, out = _run("install", home, dry_run=True)
    assert code == 0
    assert _run("install", home, dry_run=True)[1] == out
    for key in ("ProgramArguments", "RunAtLoad", "KeepAlive", "SuccessfulExit", "ThrottleInterval",
                "ExitTimeOut", "ProcessType", "Interactive", "EnvironmentVariables",
                "PYTORCH_ENABLE_MPS_FALLBACK", "/opt/homebrew/bin", "WorkingDirectory",
                "StandardOutPath", "StandardErrorPath"):
        assert key in out
    assert f"launchctl bootout {TARGET}\nlaunchctl enable {TARGET}\nlaunchctl bootstrap" in out
    assert _calls(home) == []
    assert not (home / "Library").exists()


def test_not_macos_says_so_after_the_dry_run(home: Path) -> None:
    code, out = _run("install", home, dry_run=True, system="linux")
    assert code == 1
    assert "<key>ProcessType</key>" in out and "launchctl bootstrap" in out
    assert "LaunchAgents are a macOS feature" in out
    code, out = _run("install", home, system="linux")
    assert code == 1 and "macOS feature" in out and "<key>" not in out
    assert _calls(home) == [] and not (home / "Library").exists()


def test_install_script_at_the_top_level(home: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(repo / "install_launchagent.py"), "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "COLUMNS": "300"})
    assert out.returncode == (0 if sys.platform == "darwin" else 1), out.stderr
    assert "<key>KeepAlive</key>" in out.stdout
    assert _calls(home) == []


def test_piped_dry_run_prints_a_plist_that_parses_and_carries_the_config(
        home: Path, tmp_path: Path) -> None:
    """``launchagent install --dry-run | ...``: the whole plist, DOCTYPE and PATH uncut, with
    this shell's $FACEDROP_CONFIG in its environment and --config on its command line."""
    env_cfg = tmp_path / "env.yaml"
    env_cfg.write_text("daemon:\n  shutdown_timeout: 30\n")
    flag_cfg = tmp_path / "flag.yaml"
    flag_cfg.write_text("daemon:\n  notify: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(FACEDROP_CONFIG=str(env_cfg), PYTHONPATH=str(Path(__file__).parent.parent))
    out = subprocess.run([sys.executable, "-m", "watcher.cli", "launchagent", "install",
                          "--dry-run", "--config", str(flag_cfg)],
                         capture_output=True, text=True, timeout=60, check=False, env=env)
    assert out.returncode == (0 if sys.platform == "darwin" else 1), out.stderr
    text = out.stdout
    start, end = text.index("<?xml"), text.index("</plist>") + len("</plist>")
    data = plistlib.loads(text[start:end].encode())
    assert '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" ' \
           '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">' in text
    assert data["EnvironmentVariables"]["FACEDROP_CONFIG"] == str(env_cfg.resolve())
    assert data["EnvironmentVariables"]["PATH"] == la.LAUNCHD_PATH
    assert data["ProgramArguments"][-3:] == ["watch", "--config", str(flag_cfg.resolve())]
    assert data["ExitTimeOut"] == 30 + la.EXIT_MARGIN  # the env layer was read
    assert data["WorkingDirectory"] == str(home)
    assert _calls(home) == [] and not (home / "Library").exists()


def test_worker_agent_runs_facedrop_worker_under_its_own_label(home: Path) -> None:
    console = Console(record=True, width=400)
    code = launchagent_main("install", config_path=None, dry_run=False, console=console,
                            system="darwin", home=home, uid=UID,
                            worker=("worker", "--device", "cuda:1"))
    assert code == 0, console.export_text()
    plist = home / "Library/LaunchAgents" / f"{la.WORKER_LABEL}.plist"
    data = plistlib.loads(plist.read_bytes())
    assert data["Label"] == la.WORKER_LABEL
    assert data["ProgramArguments"][-4:] == ["watcher.cli", "worker", "--device", "cuda:1"]
    assert Path(data["StandardErrorPath"]).name == f"{la.WORKER_LABEL}.err.log"
    assert not (home / "Library/LaunchAgents" / f"{la.LABEL}.plist").exists()  # daemon untouched
    calls = _calls(home)
    assert any(la.WORKER_LABEL in c for c in calls) and not any(
        c.endswith(la.LABEL) for c in calls)
