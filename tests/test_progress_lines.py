"""Time the user can read (issue 23): plain progress lines for a piped ``facedrop run``, and
estimates of a job's duration from this machine's own measured rates, per device."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import pytest

from pipeline.spec import TimingRecord
from tests.helpers.daemon_harness import facedrop, write_config
from watcher.estimate import job_audio_seconds, job_estimate
from watcher.jobqueue import JobState
from watcher.outbox import Outbox
from watcher.progress_lines import StageLines
from watcher.rates import RATES_FILE, RateStore, fit
from watcher.sqlite_queue import SqliteQueue
from watcher.status import status_report


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def timing(device: str, video_s: float, wall_s: float) -> TimingRecord:
    return TimingRecord(job="j", device=device, dtype="float32", frames=round(video_s * 25),
                        fps=25.0, audio_seconds=video_s, total_seconds=wall_s)


def test_stage_lines_one_start_and_end_per_stage_and_throttled_eta() -> None:
    lines: list[str] = []
    clock = Clock()
    show = StageLines(lines.append, interval=10.0, clock=clock)
    for i in range(1, 201):  # 200 progress calls over 100 s of one stage
        clock.now = i * 0.5
        show("render", i / 250)
    clock.now = 120.0
    show("render", 1.0)
    show("render", 1.0)  # a repeat at the end prints nothing more
    show("verify", 1.0)
    show.close()
    assert lines[0] == "render: started"
    assert lines.count("render: started") == 1 and lines.count("verify: started") == 1
    progress = [line for line in lines if "%" in line]
    assert 8 <= len(progress) <= 10  # at most one line per 10 s of a 100 s stage
    # started at 0.5 s; at 10.5 s 8.4% is done: 10 s * 0.916 / 0.084 = 109 s left
    assert progress[0] == "render: 8% after 10 s, about 1 min 49 s left"
    assert "render: done in 2 min 0 s" in lines
    assert [line for line in lines if line.startswith("verify")] == [
        "verify: started", "verify: done in 0 s"]


def test_stage_lines_say_when_the_time_left_is_not_known_yet() -> None:
    lines: list[str] = []
    clock = Clock()
    show = StageLines(lines.append, interval=10.0, clock=clock)
    show("driving", 0.0)
    clock.now = 12.0
    show("driving", 0.001)
    assert lines == ["driving: started", "driving: 0% after 12 s, time left not known yet"]
    show("render", 0.0)  # the next stage ends the last one
    assert lines[-2:] == ["driving: done in 12 s", "render: started"]


def test_rates_are_kept_per_device_and_fitted(tmp_path: Path) -> None:
    store = RateStore(tmp_path)
    assert store.estimate(10.0) is None  # no history: no number
    store.record(timing("cpu", 10.0, 70.0))
    one = store.estimate(20.0)
    assert one is not None and one.device == "cpu" and one.jobs == 1
    assert one.seconds == pytest.approx(140.0)  # one sample: its rate alone
    store.record(timing("cpu", 20.0, 120.0))  # 20 s fixed + 5 s per video second
    two = store.estimate(30.0, "cpu")
    assert two is not None and two.seconds == pytest.approx(170.0) and two.jobs == 2
    store.record(timing("cuda", 10.0, 5.0))
    assert store.estimate(30.0, "cpu").seconds == pytest.approx(170.0)  # untouched
    assert store.estimate(30.0).device == "cuda"  # the last job's device by default
    assert store.estimate(30.0).seconds == pytest.approx(15.0)
    assert store.estimate(30.0, "mps") is None
    assert "about 2 min 50 s (from 2 jobs on cpu)" == store.estimate(30.0, "cpu").text()


def test_a_broken_rates_file_reads_as_no_history(tmp_path: Path) -> None:
    (tmp_path / RATES_FILE).write_text("{not json")
    store = RateStore(tmp_path)
    assert store.estimate(5.0) is None
    store.record(timing("cpu", 5.0, 50.0))
    assert store.estimate(5.0).seconds == pytest.approx(50.0)
    # a fit that goes negative is not kept: a constant time, or a rate with no fixed part
    assert fit([(10.0, 100.0), (20.0, 50.0)]) == (75.0, 0.0)
    assert fit([(10.0, 10.0), (20.0, 40.0)]) == pytest.approx((0.0, 50.0 / 30.0))


def test_a_queued_job_gets_an_estimate_in_status_and_status_json(tmp_path: Path) -> None:
    state, work = tmp_path / "state", tmp_path / "state" / "work"
    folder = work / "slot1" / "hello"
    folder.mkdir(parents=True)
    (folder / "job.yaml").write_text("audio: talk.wav\n")
    (folder / "talk.wav").write_bytes(b"")
    probe = {folder / "talk.wav": 6.0}.get  # the header probe, injected
    assert job_audio_seconds(folder, probe) == 6.0
    queue = SqliteQueue(state)
    try:
        job = queue.enqueue("hello", "slot1/hello", "hello")
    finally:
        queue.close()
    rates = RateStore(state)
    assert job_estimate(folder, rates, probe)["text"].startswith("no estimate yet")
    rates.record(timing("cpu", 3.0, 30.0))
    assert job_estimate(folder, rates, probe)["seconds"] == pytest.approx(60.0)

    outbox = Outbox(tmp_path / "outbox",
                    estimator=lambda j: job_estimate(work / j.payload, rates, probe))
    outbox.publish(job)
    status = json.loads((tmp_path / "outbox" / "hello" / "status.json").read_text())
    assert status["state"] == JobState.QUEUED.value
    assert status["estimate"]["seconds"] == pytest.approx(60.0)
    assert status["estimate"]["text"] == "about 1 min 0 s (from 1 job on cpu)"

    # status reads the real header: an empty file is not a recording, so it says so
    report = status_report(state, tmp_path / "inbox", 5)
    queued = report["jobs"]["queued"]
    assert [j["name"] for j in queued] == ["hello"]
    assert queued[0]["estimate"]["text"].startswith("no estimate yet")
    with wave.open(str(folder / "talk.wav"), "wb") as w:  # 6 s of silence, a real header
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * 8000 * 6))
    report = status_report(state, tmp_path / "inbox", 5)
    assert report["jobs"]["queued"][0]["estimate"]["seconds"] == pytest.approx(60.0)
    queue = SqliteQueue(state)
    try:
        assert queue.take(time.time()) is not None  # it starts: status counts down
    finally:
        queue.close()
    running = status_report(state, tmp_path / "inbox", 5)["jobs"]["running"][0]
    assert 55.0 <= running["left_seconds"] <= 60.0


def test_piped_run_prints_one_start_line_per_stage_and_learns_its_rate(tmp_path, example_job):
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    (example_job / "job.yaml").write_text("face: astronaut.jpg\naudio: hello.wav\nfps: 10\n")
    first = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "estimate: no estimate yet (no finished job on this machine)"
    starts = [line for line in lines if line.endswith(": started")]
    assert starts == ["render: started", "verify: started"]
    assert len([line for line in lines if line.startswith("render: done in")]) == 1
    assert "━" not in first.stdout  # no progress bar redraws in a pipe
    rates = json.loads((tmp_path / "root" / "state" / RATES_FILE).read_text())
    assert list(rates["devices"]) == [rates["last_device"]] and len(
        rates["devices"][rates["last_device"]]) == 1
    second = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0].startswith("estimate: about ")
    assert "(from 1 job on " in second.stdout.splitlines()[0]
