"""The fault board's policy with an injected clock: notify once, back off, clear by probe."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from pipeline.errors import InputError, WeightsError
from watcher.faults import Fault, FaultBoard, FaultKind, Places, Scope, classify


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_fault_is_notified_once_backs_off_and_clears_when_its_probe_passes():
    clock, heard, disk_ok = Clock(), [], [False]
    board = FaultBoard({FaultKind.OUTBOX: lambda: disk_ok[0]}, clock=clock,
                       notifier=lambda t, b: heard.append((t, b)), base=1.0, cap=4.0)
    fault = Fault(FaultKind.OUTBOX, "the outbox is read-only")
    board.report(fault)
    assert board.blocked(Scope.WORK) and board.blocked(Scope.INTAKE)
    waits = []
    for _ in range(5):  # each failed probe doubles the wait, up to the cap
        waits.append(board.next_try_in())
        clock.now += waits[-1]
        assert board.blocked(Scope.WORK)  # probe fails: reported again, silently
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert heard == [("facedrop paused", "the outbox is read-only")]
    disk_ok[0] = True
    clock.now += 4.0
    assert not board.blocked(Scope.WORK) and board.active() == []


def test_weights_pause_work_only_and_wait_for_the_next_try():
    clock = Clock()
    board = FaultBoard({}, clock=clock, base=0.5)
    board.report(Fault(FaultKind.WEIGHTS, "weights missing"))
    assert board.blocked(Scope.WORK) and not board.blocked(Scope.INTAKE)
    clock.now = 0.5
    assert not board.blocked(Scope.WORK)  # no probe: the next job is the test
    assert board.active()  # still listed until a job gets past the models
    board.resolve(FaultKind.WEIGHTS)
    assert board.active() == []


def test_classify_tells_environment_faults_from_the_jobs_own_problems(tmp_path: Path):
    places = Places(tmp_path / "in", tmp_path / "out", tmp_path / "state", tmp_path / "w")

    def kind(err: BaseException, default: FaultKind) -> FaultKind | None:
        fault = classify(err, places, default)
        return fault.kind if fault else None

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))
    assert kind(full, FaultKind.STATE) is FaultKind.OUTBOX
    copy = OSError(errno.ENOSPC, "No space left", str(tmp_path / "in" / "a"),
                   None, str(tmp_path / "state" / "work" / "a"))
    assert kind(copy, FaultKind.OUTBOX) is FaultKind.STATE
    db = sqlite3.OperationalError("database or disk is full")
    assert kind(db, FaultKind.OUTBOX) is FaultKind.STATE
    weights = WeightsError("the weights are missing")
    assert kind(weights, FaultKind.OUTBOX) is FaultKind.WEIGHTS
    assert kind(InputError("bad photo"), FaultKind.OUTBOX) is None
    assert kind(sqlite3.IntegrityError("UNIQUE constraint"), FaultKind.STATE) is None
    assert kind(OSError(errno.ENOENT, "gone"), FaultKind.OUTBOX) is None
    unreadable = PermissionError(errno.EACCES, "denied", str(tmp_path / "state/work/s/j/a.wav"))
    assert kind(unreadable, FaultKind.OUTBOX) is None  # the job's file, not the disk
