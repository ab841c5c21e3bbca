"""Every listing command, piped (a real subprocess whose stdout is a pipe, no COLUMNS), over a
state with many entries and long names: no line over 200 characters, no row folded onto a
second line, nothing cut; and ``status --json`` validates against ``docs/status.schema.json``
(README "Status"), with every list ``[]`` when empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline.driving_library import add_clip
from tests.conftest import REPO
from tests.helpers.daemon_harness import write_config
from tests.helpers.media_samples import write_video
from watcher.config import load_config
from watcher.sqlite_queue import SqliteQueue

SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text())
LIMIT = 200
# A long, ordinary name: a folder a user dropped, a job, a clip (about 90 characters).
LONG = "quarterly-all-hands-welcome-message-for-the-new-starters-in-the-amsterdam-office-take"
ERROR = ("the photo has no face that can be tracked: the largest face found covers 0.4% of "
         "the picture and is turned away; use a frontal photo where the face fills at least a "
         "tenth of the picture, taken in even light, and drop the job folder in again")


def _cli(home: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``facedrop ARGS --config CFG`` with stdout a pipe and no COLUMNS: what ``| grep`` sees."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "FACEDROP_CONFIG", "FACEDROP_WEIGHTS_MIRROR")}
    env.update(PYTHONPATH=str(REPO), HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return subprocess.run([sys.executable, "-m", "watcher.cli", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def _root(tmp_path: Path) -> Path:
    """Every folder under a path of about 100 characters, as a user's synced folders are."""
    return tmp_path / "Shared drives" / "Video team (all offices)" / "facedrop"


def _fill(root: Path, cfg: Path) -> dict[str, list[str]]:
    """Many inbox entries, jobs in every state, clips and damaged weights, all with long names;
    returns, per command, the names that must each come out whole on one line."""
    config = load_config(cfg)
    inbox = [f"{LONG}-{i:03d}" for i in range(40)]
    for name in inbox:
        (config.paths.inbox / name).mkdir(parents=True)
    queue = SqliteQueue(config.paths.state)
    names = [f"{LONG}-job-{i:02d}" for i in range(12)]
    jobs = [queue.enqueue(n, f"payload-{i}", f"{n}-out") for i, n in enumerate(names)]
    for i, job in enumerate(jobs[:8]):
        queue.take(job.claimed_at + 1)
        if i < 4:
            queue.done(job.id, video=f"{names[i]}.mp4", realtime_factor=3.0)
        elif i < 7:
            queue.fail(job.id, ERROR)
    queue.close()  # jobs 8..11 queued, job 7 running
    clips = [f"clip-{i}-{LONG[:50]}" for i in range(6)]  # names are at most 64 characters
    for i, name in enumerate(clips):
        video = write_video(root / f"clip{i}.mp4", frames=2 + i, size=32)
        add_clip(config.pipeline, video, name)
    weights = config.paths.weights / "wav2lip"
    weights.mkdir(parents=True)
    (weights / "wav2lip.pth").write_bytes(b"not a checkpoint")  # detail and fix lines
    return {"status": inbox + names, "drivers": clips, "weights": ["wav2lip/wav2lip.pth"],
            "doctor": [], "service": []}


COMMANDS = [
    ("weights", ("weights", "list")),
    ("weights", ("weights", "verify")),
    ("drivers", ("drivers", "list")),
    ("doctor", ("doctor",)),
    ("status", ("status",)),
    ("service", ("service", "status", "--dry-run")),
    ("service", ("service", "status", "--worker", "--dry-run")),
]


def test_piped_listing_commands_with_many_long_entries_keep_every_row_whole(
        tmp_path: Path) -> None:
    root = _root(tmp_path)
    cfg = write_config(root)
    whole = _fill(root, cfg)
    for kind, command in COMMANDS:
        result = _cli(tmp_path, cfg, *command)
        assert result.returncode in (0, 1), (command, result.stderr)  # doctor, verify: 1
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stdout.splitlines()
        assert lines, command
        longest = max(lines, key=len)
        assert len(longest) <= LIMIT, (command, longest)
        assert "…" not in result.stdout, command  # nothing cut to fit a width
        for name in whole[kind]:  # a folded row would split its name across two lines
            hits = [line for line in lines if name in line]
            assert len(hits) >= 1, (command, name, result.stdout)


def _validate(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_status_json_validates_against_the_documented_schema(tmp_path: Path) -> None:
    root = _root(tmp_path)
    cfg = write_config(root)
    empty = _cli(tmp_path, cfg, "status", "--json")
    assert empty.returncode == 0, empty.stderr
    doc = json.loads(empty.stdout)
    _validate(doc)
    assert doc["jobs"] == {"running": [], "queued": [], "finished": [], "more": []}
    assert doc["inbox"] == [] and doc["paused"] == []

    _fill(root, cfg)
    full = json.loads(_cli(tmp_path, cfg, "status", "--json", "--recent", "3").stdout)
    _validate(full)
    jobs = full["jobs"]
    assert [len(jobs[k]) for k in ("running", "queued", "finished")] == [1, 4, 3]
    assert jobs["more"] and len(full["inbox"]) == 40
    assert jobs["running"][0]["estimate"]["text"]


def test_status_json_of_a_fleet_whose_redis_is_down_validates(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the fleet cannot be reached
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(_root(tmp_path), queue={"backend": "redis",
                                               "url": f"redis://127.0.0.1:{port}/0"})
    result = _cli(tmp_path, cfg, "status", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    _validate(doc)
    assert doc["fleet"]["workers"] == [] and doc["fleet"]["reachable"] is False
    assert [p["kind"] for p in doc["paused"]] == ["fleet"]


@pytest.mark.parametrize("broken", [{"jobs": None}, {"inbox": None},
                                    {"jobs": {"running": None, "queued": [], "finished": [],
                                              "more": []}}])
def test_the_schema_rejects_null_lists(broken: dict[str, Any]) -> None:
    doc = {"daemon": {"running": False, "pid": None}, "paused": [], "inbox": [],
           "inbox_total": 0, "inbox_unlisted": 0, "inbox_more": 0,
           "jobs": {"running": [], "queued": [], "finished": [], "more": []}}
    _validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate({**doc, **broken})
