"""Rotating logs, one line per job state change, and ``facedrop logs [-f]``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.spec import StageTiming
from watcher import logs
from watcher.cli import main


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "logs"
    logs.teardown_logging()


def test_rotation_is_size_bounded(log_dir: Path) -> None:
    logs.setup_logging(log_dir, max_bytes=2_000, backups=2)
    for i in range(300):
        logging.getLogger("facedrop.daemon").info("line %03d %s", i, "x" * 40)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == ["facedrop.log", "facedrop.log.1", "facedrop.log.2"]
    assert all((log_dir / f).stat().st_size <= 2_000 for f in files)
    assert "line 299" in (log_dir / "facedrop.log").read_text()
    assert "line 000" not in "".join((log_dir / f).read_text() for f in files)


def test_one_line_per_job_state_change(log_dir: Path) -> None:
    logs.setup_logging(log_dir)
    logs.setup_logging(log_dir)  # idempotent: still one handler, one line per event
    stages = [StageTiming("motion", 4.1, 100), StageTiming("lipsync", 2.0, 100)]
    logs.log_job_state("anna intro", "queued")
    logs.log_job_state("anna intro", "done", attempt=1, stages=stages, total=7.25)
    logs.log_job_state('bad "one"', "failed", attempt=3,
                       error="Problem with the job: no face\nFix: another photo")
    lines = logs.log_file(log_dir).read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith('INFO facedrop.jobs: job="anna intro" state=queued')
    assert lines[1].endswith('job="anna intro" state=done attempt=1 total=7.25s '
                             'stages=motion:4.10s,lipsync:2.00s')
    assert 'WARNING facedrop.jobs: job="bad \\"one\\"" state=failed attempt=3 ' \
           'error="Problem with the job: no face"' in lines[2]


def test_tail(tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_text("".join(f"{i}\n" for i in range(5000)))
    assert logs.tail(f, 3) == ["4997\n", "4998\n", "4999\n"]
    assert logs.tail(f, 0) == [] and logs.tail(tmp_path / "none", 5) == []


def test_follow_reads_new_lines_across_a_rotation(tmp_path: Path) -> None:
    f = tmp_path / "facedrop.log"
    f.write_text("old\n")
    got: list[str] = []
    steps = iter([
        lambda: _append(f, "one\n"),
        lambda: (_append(f, "two\n"), f.rename(tmp_path / "facedrop.log.1"),
                 f.write_text("three\n")),
        lambda: _append(f, "four\n"),
    ])
    rounds = {"n": 0}

    def fake_sleep(_: float) -> None:
        rounds["n"] += 1
        step = next(steps, None)
        if step is not None:
            step()

    logs.follow(f, got.append, sleep=fake_sleep, keep_going=lambda: rounds["n"] < 6)
    assert got == ["one\n", "two\n", "three\n", "four\n"]


def test_cli_logs_and_follow_until_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"paths:\n  logs: {tmp_path / 'L'}\n")
    assert main(["--config", str(cfg), "logs"]) == 1
    assert "No log yet" in capsys.readouterr().err
    (tmp_path / "L").mkdir()
    log = tmp_path / "L/facedrop.log"
    log.write_text("a\nb\nc\n")
    assert main(["--config", str(cfg), "logs", "-n", "2"]) == 0
    assert capsys.readouterr().out == "b\nc\n"
    calls = {"n": 0}

    def sleep(_: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            _append(log, "d\n")
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(logs, "follow", _follow_with(sleep))
    assert main(["--config", str(cfg), "logs", "-f", "-n", "1"]) == 0
    assert capsys.readouterr().out == "c\nd\n"


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _follow_with(sleep):  # noqa: ANN001, ANN202 - binds the fake sleep as the default
    real = logs.follow

    def follow(path, emit, **kw):  # noqa: ANN001, ANN003, ANN202
        return real(path, emit, sleep=sleep, **kw)

    return follow
