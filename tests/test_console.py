"""One pipe-safe console: piped, the listing commands print whole lines (none over 200
characters, no table row folded), tables become one line per row, and ``status --json`` has
the documented shape with empty lists, never null."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import REPO
from tests.helpers.daemon_harness import write_config
from watcher.console import PROSE_WIDTH, print_table

LONG_FIX = "run this and then that " * 20  # 460 characters of free text


def test_print_table_is_a_table_on_a_terminal_and_lines_in_a_pipe() -> None:
    rows = [("alpha", "[green]ok[/]", LONG_FIX), ("beta", "[red]FAIL[/]", "")]
    terminal = Console(record=True, width=100, force_terminal=True)
    print_table(terminal, "checks", ("name", "state", "fix"), rows, prose=("fix",))
    assert "┃ name" in terminal.export_text()
    piped = Console(record=True, width=10_000, soft_wrap=True, force_terminal=False)
    print_table(piped, "checks", ("name", "state", "fix"), rows, prose=("fix",))
    lines = piped.export_text().splitlines()
    assert lines[:2] == ["checks", "alpha  ok"]
    assert lines[2].startswith("    fix: run this") and lines[-1] == "beta  FAIL"
    assert all(len(line) <= PROSE_WIDTH for line in lines)
    assert " ".join(line.strip() for line in lines[2:-1]) == f"fix: {LONG_FIX.strip()}"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``facedrop ARGS`` with stdout a pipe and no COLUMNS: what ``| grep`` sees."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "FACEDROP_CONFIG")}
    env.update(PYTHONPATH=str(REPO), HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return subprocess.run([sys.executable, "-m", "watcher.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize("command", [("weights", "list"), ("weights", "verify"), ("doctor",),
                                     ("drivers", "list"), ("status",)])
def test_piped_listing_commands_keep_lines_short_and_whole(tmp_path: Path,
                                                           command: tuple[str, ...]) -> None:
    cfg = write_config(tmp_path / "root")
    result = _cli(tmp_path, *command, "--config", str(cfg))
    assert result.returncode in (0, 1), result.stderr  # doctor and verify: 1, nothing installed
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 200, max(lines, key=len)
    assert "…" not in result.stdout  # nothing cut to fit


def test_status_json_has_the_documented_shape_with_empty_lists(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "root")
    (tmp_path / "root" / "inbox").mkdir(parents=True)
    (tmp_path / "root" / "inbox" / "waiting-job").mkdir()
    result = _cli(tmp_path, "status", "--json", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == {
        "daemon": {"running": False, "pid": None},
        "paused": [],
        "inbox": [{"name": "waiting-job", "verdict": "waiting",
                   "reason": "the daemon is not running"}],
        "inbox_total": 1, "inbox_unlisted": 0, "inbox_more": 0,
        "jobs": {"running": [], "queued": [], "finished": [], "more": []},
    }
