"""Readiness on real folders with an injected clock (and injected stat for macOS-only flags)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.media_samples import write_image
from watcher.readiness import FINDER_BUSY, SF_DATALESS, ReadinessTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def job(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "face.png").write_bytes(b"p" * 100)
    (folder / "voice.wav").write_bytes(b"w" * 100)
    (folder / "job.yaml").write_text("")
    return folder


def settle(tracker: ReadinessTracker, folder: Path, clock: Clock, checks: int):
    verdicts = []
    for _ in range(checks):
        verdicts.append(tracker.check(folder))
        clock.now += tracker.settle_seconds
    return verdicts


def test_ready_only_after_n_stable_checks(job, clock):
    tracker = ReadinessTracker(2.0, 3, clock=clock)
    verdicts = settle(tracker, job, clock, 3)
    assert [v.ready for v in verdicts] == [False, False, True]
    assert "stop changing" in verdicts[0].reason


def test_growing_file_resets_the_settle_window(job, clock):
    tracker = ReadinessTracker(2.0, 3, clock=clock)
    settle(tracker, job, clock, 2)
    with (job / "voice.wav").open("ab") as fh:
        fh.write(b"more")
    assert [v.ready for v in settle(tracker, job, clock, 3)] == [False, False, True]


def test_rapid_checks_do_not_shorten_the_settle_time(job, clock):
    tracker = ReadinessTracker(2.0, 3, clock=clock)
    for _ in range(10):  # a burst of filesystem events triggers many checks at once
        assert not tracker.check(job).ready
    clock.now += 4.0
    assert tracker.check(job).ready


@pytest.mark.parametrize(
    "name",
    [
        ".voice.wav.Xy12",
        "voice.wav.partial",
        "clip.crdownload",
        "a.download",
        "x.tmp",
        "~$draft.wav",
    ],
)
def test_temp_and_partial_names_block(job, clock, name):
    (job / name).write_bytes(b"x")
    tracker = ReadinessTracker(0.1, 2, clock=clock)
    verdicts = settle(tracker, job, clock, 4)
    assert not any(v.ready for v in verdicts)
    assert "temporary file" in verdicts[-1].reason
    (job / name).unlink()
    assert settle(tracker, job, clock, 2)[-1].ready


def test_finder_litter_does_not_block(job, clock):
    (job / ".DS_Store").write_bytes(b"\0")
    (job / "._face.png").write_bytes(b"\0")
    assert settle(ReadinessTracker(0.1, 2, clock=clock), job, clock, 2)[-1].ready


def test_missing_job_yaml_waits(job, clock):
    (job / "job.yaml").unlink()
    verdict = settle(ReadinessTracker(0.1, 2, clock=clock), job, clock, 4)[-1]
    assert not verdict.ready and "job.yaml" in verdict.reason


def test_manifest_waits_for_listed_files_and_sizes(job, clock):
    (job / "job.yaml").write_text(
        "files:\n  - face.png\n  - {name: extra.png}\n  - {name: voice.wav, size: 150}\n"
    )
    tracker = ReadinessTracker(0.1, 2, clock=clock)
    verdict = settle(tracker, job, clock, 3)[-1]
    assert not verdict.ready and "extra.png" in verdict.reason
    write_image(job / "extra.png")
    verdict = settle(tracker, job, clock, 3)[-1]
    assert not verdict.ready and "150 bytes" in verdict.reason
    with (job / "voice.wav").open("ab") as fh:
        fh.write(b"w" * 50)
    assert settle(tracker, job, clock, 2)[-1].ready


def fake_stat(**flags_for: dict[str, float]):
    """os.lstat, plus the macOS-only st_flags / st_birthtime for chosen names."""

    def stat(path: Path):
        st = os.lstat(path)
        extra = flags_for.get(path.name.replace(".", "_"), {})
        return SimpleNamespace(
            st_size=st.st_size,
            st_mtime_ns=st.st_mtime_ns,
            st_flags=extra.get("st_flags", 0),
            st_birthtime=extra.get("st_birthtime", st.st_mtime),
        )

    return stat


def test_cloud_placeholder_blocks(job, clock):
    stat = fake_stat(voice_wav={"st_flags": SF_DATALESS | 0x60})
    verdict = settle(ReadinessTracker(0.1, 2, clock=clock, stat=stat), job, clock, 4)[-1]
    assert not verdict.ready and "cloud placeholder" in verdict.reason


def test_finder_busy_creation_date_blocks(job, clock):
    stat = fake_stat(face_png={"st_birthtime": FINDER_BUSY})
    verdict = settle(ReadinessTracker(0.1, 2, clock=clock, stat=stat), job, clock, 4)[-1]
    assert not verdict.ready and "Finder" in verdict.reason
    ok = fake_stat(face_png={"st_birthtime": FINDER_BUSY + 86400 * 365})
    assert settle(ReadinessTracker(0.1, 2, clock=clock, stat=ok), job, clock, 2)[-1].ready


def test_vanished_folder_is_not_ready(tmp_path, clock):
    verdict = ReadinessTracker(0.1, 2, clock=clock).check(tmp_path / "gone")
    assert not verdict.ready and "cannot read" in verdict.reason
