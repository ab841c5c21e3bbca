"""The fleet worker's console: one line per job event (start, each stage change, result), not
one per progress report. (The whole job path runs in tests/test_fleet.py, against Redis.)"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.helpers.daemon_pipeline import TestPipeline
from tests.helpers.fleet_harness import fleet_config
from watcher.config import load_config
from watcher.fleet.ledger import Ledger
from watcher.fleet.messages import Manifest, Verdict
from watcher.fleet.runner import FleetWorker, _Current, _outcome
from watcher.storage import open_storage


def test_stage_changes_are_one_line_each_and_the_result_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nobody listens: progress is advisory
    cfg = load_config(fleet_config(tmp_path / "root", url, tmp_path / "share"),
                      home=tmp_path / "home")
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    worker = FleetWorker(cfg, lambda c: TestPipeline(c.pipeline), Ledger(client, "t"),
                         open_storage(cfg))
    report = worker._progress(_Current("k", "anna-intro", 1))
    with caplog.at_level(logging.INFO, "facedrop.fleet.worker"):
        for stage, fraction in (("animate", 0.0), ("animate", 0.4), ("animate", 0.9),
                                ("lipsync", 0.1), ("lipsync", 0.8), ("encode", 1.0)):
            report(stage, fraction)
    assert [r.getMessage() for r in caplog.records] == [
        "job anna-intro: animate", "job anna-intro: lipsync", "job anna-intro: encode"]
    done = Manifest(Verdict.DONE, "w", video="anna-intro.mp4", realtime_factor=0.5, total=12.04)
    assert _outcome(done) == "done: anna-intro.mp4 in 12.0 s (0.50x realtime)"
    failed = Manifest(Verdict.FAILED, "w", error="\nError: no face in the photo\nFix: another\n")
    assert _outcome(failed) == "failed: Error: no face in the photo"
