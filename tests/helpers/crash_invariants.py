"""The exactly-once invariants a crash test checks after a clean daemon has finished everything."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.helpers.daemon_harness import litter, read_status


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_invariants(jobs: dict[str, tuple[bool, dict[str, str]]], inbox: Path, outbox: Path,
                     state: Path, runlog: Path) -> None:
    # Exactly one outbox folder per job, under its own name (no "(2)" next to an orphan).
    assert sorted(p.name for p in outbox.iterdir()) == sorted(jobs)
    runs = [line.split("\t") for line in runlog.read_text().splitlines()]
    with sqlite3.connect(state / "facedrop.db") as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT outbox, state, attempts FROM jobs")}
        finals = dict(conn.execute(
            "SELECT jobs.outbox, attempts.at FROM attempts JOIN jobs ON jobs.id = job_id "
            "WHERE to_state IN ('done', 'failed')"
        ).fetchall())
        assert len(finals) == len(jobs)  # one final transition per job
    assert sorted(rows) == sorted(jobs)  # one database row per job, no duplicate claims
    for name, (good, inputs) in jobs.items():
        folder = outbox / name
        status = read_status(folder)
        assert status is not None
        assert (status["state"], status["attempt"]) == rows[name], name
        assert rows[name][0] == ("done" if good else "failed"), (name, status)
        got = {p.name: sha(p) for p in (folder / "input").iterdir()}
        assert got == inputs, name  # all inputs, byte-identical
        mine = [(float(at), what) for job, _pid, at, what in runs if job == name]
        starts = sum(1 for _at, what in mine if what == "start")
        if good:
            # A kill before the result was recorded may cost a rerun (the unpublished video is
            # discarded); once a job is recorded done, it never runs again.
            assert any(what == "end" for _at, what in mine), name
            assert all(at < finals[name] for at, _what in mine), (name, mine, finals[name])
            assert len(list(folder.glob("*.mp4"))) == 1
            assert (folder / f"{name}.mp4").is_file() and (folder / "timing.json").is_file()
        else:
            assert starts == 0 and (folder / "error.txt").is_file()
    assert litter(inbox, outbox, state) == []
    assert [p for p in outbox.rglob("*") if p.is_dir() and not any(p.iterdir())] == []
    assert list(inbox.iterdir()) == []
    assert list((state / "work").iterdir()) == []
