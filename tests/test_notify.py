"""Notifications: AppleScript escaping, non-blocking osascript, and a missing osascript that
leaves the job done with one warning in the log."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tests.helpers.daemon_harness import make_job, read_status, speech_clip, write_config
from watcher.macos.notify import (
    NullNotifier,
    OsascriptNotifier,
    applescript_quote,
    job_notification,
    make_notifier,
    notification_script,
)

RECORDER = """#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a" >> "$NOTIFY_LOG"; done
exit 0
"""


def _unquote(literal: str) -> str:
    """Parse one AppleScript string literal back (the inverse of the escaping under test)."""
    assert literal[0] == '"' and literal[-1] == '"'
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != '"', "unescaped quote ends the string early"
            out.append(body[i])
            i += 1
    return "".join(out)


def test_quoting_round_trips_quotes_and_backslashes() -> None:
    tricky = 'Anna\'s "intro" \\ C:\\path\\"x\\'
    assert _unquote(applescript_quote(tricky)) == tricky
    assert applescript_quote("two\nlines") == '"two lines"'


def test_osascript_gets_the_escaped_script(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "osascript"
    fake.write_text(RECORDER)
    fake.chmod(0o755)
    monkeypatch.setenv("NOTIFY_LOG", str(tmp_path / "args"))
    notifier = OsascriptNotifier(str(fake))
    title, body = job_notification('job "7"', video=Path('/out/job "7"/job "7".mp4'))
    notifier(title, body)
    notifier.close()
    args = (tmp_path / "args").read_text().split("\0")[:-1]
    assert args[0] == "-e"
    script = args[1]
    assert script == notification_script(title, body)
    prefix, rest = script.split(" ", 2)[:2], script.split(" ", 2)[2]
    assert prefix == ["display", "notification"]
    body_lit, title_lit = rest.split(" with title ")
    assert _unquote(body_lit) == 'Done: /out/job "7"/job "7".mp4'
    assert _unquote(title_lit) == 'job "7"'


def test_error_body_is_the_first_line() -> None:
    assert job_notification("j", error="\nProblem with the job: no face\nFix: use another") == \
        ("j", "Failed: Problem with the job: no face")


def test_never_blocks_and_kills_a_hung_osascript(tmp_path: Path) -> None:
    slow = tmp_path / "osascript"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    now = [0.0]
    notifier = OsascriptNotifier(str(slow), timeout=5, clock=lambda: now[0])
    t0 = time.monotonic()
    notifier("a", "b")
    assert time.monotonic() - t0 < 1.0
    (proc, _), = notifier._pending
    now[0] = 6.0
    notifier("c", "d")  # reaps: the first one is past its timeout and gets killed
    assert proc.returncode is not None
    notifier.close(timeout=0.1)
    assert notifier._pending == []


def test_missing_osascript_warns_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    notifier = OsascriptNotifier("/nonexistent/osascript")
    with caplog.at_level(logging.WARNING, logger="facedrop.notify"):
        notifier("a", "b")
        notifier("c", "d")
    warnings = [r for r in caplog.records if r.name == "facedrop.notify"]
    assert len(warnings) == 1 and "notifications are not working" in warnings[0].getMessage()


def test_make_notifier() -> None:
    assert isinstance(make_notifier(False, system="darwin"), NullNotifier)
    assert isinstance(make_notifier(True, system="linux"), NullNotifier)
    assert isinstance(make_notifier(True, system="darwin"), OsascriptNotifier)


def test_daemon_job_is_done_despite_missing_osascript(tmp_path: Path, astronaut_path: Path,
                                                      speech_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from watcher.config import load_config
    from watcher.daemon import Daemon, pipeline_factory

    for var in [v for v in os.environ if v.startswith(("FACEDROP_", "XDG_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    cfg = load_config(write_config(root, daemon={"notify": True, "settle_seconds": 0.02,
                                                 "settle_checks": 2}))
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.5)
    cfg.paths.inbox.mkdir(parents=True)
    for name in ("one", "two"):
        make_job(root / "staging", name, astronaut_path, clip).rename(cfg.paths.inbox / name)
    daemon = Daemon(cfg, pipeline_factory("tests.helpers.daemon_pipeline:TestPipeline"),
                    notifier=OsascriptNotifier("/nonexistent/osascript"))
    with caplog.at_level(logging.WARNING):
        daemon.run(burst=True, install_signals=False)
    for name in ("one", "two"):
        assert (read_status(cfg.paths.outbox / name) or {}).get("state") == "done"
    # only facedrop's own records: watchdog may log a benign shutdown race of its inotify thread
    warnings = [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("facedrop")]
    assert [r.name for r in warnings] == ["facedrop.notify"]


def test_the_quality_headline_is_in_the_done_notification() -> None:
    video = Path("/out/j/j.mp4")
    assert job_notification("j", video=video, quality="check lip sync") == (
        "j", f"Done — check lip sync: {video}")
    assert job_notification("j", video=video, quality="not scored") == (
        "j", f"Done — not scored: {video}")
    assert job_notification("j", video=video, quality="ok") == ("j", f"Done: {video}")
    assert job_notification("j", video=video) == ("j", f"Done: {video}")
