"""Issue 20: hostile cases invented around the intake, beyond the numbered defects.

Each builds a real job folder (or inbox entry) spoiled one way and drives the real readiness
tracker, inbox scanner and job parser with an injected clock. The assertion is what a user must
see: a verdict in bounded time, never a hang or a traceback, and a message naming the file.
"""

from __future__ import annotations

import os
import struct
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.media.wholeness import Whole, check_whole
from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from watcher.config import Config, load_config
from watcher.content_sample import content_sample
from watcher.inbox_scan import InboxScanner, Verdict
from watcher.jobfolder import MAX_LISTED, parse_job_folder, validate_job_keys
from watcher.jobzip import ZipLimits, unpack_job_zip
from watcher.readiness import ReadinessTracker, ReadyState

BOUND = 5.0  # seconds any single check may take


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root"), home=tmp_path / "home")


@pytest.fixture
def job(tmp_path: Path, astronaut_path: Path, speech_path: Path) -> Path:
    voice = speech_clip(speech_path, tmp_path / "clip.wav", 1.0)
    return make_job(tmp_path / "in", "j", astronaut_path, voice)


def verdicts(folder: Path, seconds: float, grace: float = 10.0) -> list:
    """Scanner verdicts every 0.5 s of injected time, each within the time bound."""
    clock = Clock()
    scanner = InboxScanner(ReadinessTracker(0.5, 3, grace_seconds=grace, clock=clock),
                           clock=clock)
    seen = []
    for _ in range(int(seconds / 0.5)):
        start = time.monotonic()
        seen.append(scanner.classify(folder))
        assert time.monotonic() - start < BOUND
        clock.now += 0.5
    return seen


def parse_error(folder: Path, config: Config) -> str:
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        parse_job_folder(folder, config)
    assert time.monotonic() - start < BOUND
    return info.value.user_message()


def test_a_fifo_where_the_recording_should_be_fails_without_opening_it(job, config):
    (job / "voice.wav").unlink()
    os.mkfifo(job / "voice.wav")  # opening it for reading would block for ever
    seen = verdicts(job, 1.5)  # claimed at once: waiting cannot make a pipe a file
    assert seen[-1].verdict is Verdict.READY, [e.line() for e in seen]
    message = parse_error(job, config)
    assert "voice.wav" in message and "named pipe" in message


def test_a_job_yaml_that_is_a_folder_fails_at_once(job, config):
    (job / "job.yaml").unlink()
    (job / "job.yaml").mkdir()
    seen = verdicts(job, 1.5, grace=120.0)
    assert seen[-1].verdict is Verdict.FAILED, [e.line() for e in seen]
    assert seen[-1].error is not None and "job.yaml" in seen[-1].error.user_message()


def test_a_symlink_loop_in_the_job_folder_does_not_hang_it(job, config):
    os.symlink("loop_b", job / "loop_a")
    os.symlink("loop_a", job / "loop_b")
    seen = verdicts(job, 1.5)
    assert seen[-1].verdict is Verdict.READY, [e.line() for e in seen]
    assert parse_job_folder(job, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_a_zero_byte_photo_waits_the_grace_period_then_fails_by_name(job, config):
    (job / "face.png").write_bytes(b"")
    seen = verdicts(job, 12.0)
    assert seen[3].verdict is Verdict.WAITING and "face.png" in seen[3].reason
    assert seen[-1].verdict is Verdict.FAILED
    assert "face.png" in parse_error(job, config)


def test_a_zip_bomb_of_one_highly_compressed_member_is_refused(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("j/job.yaml", "")
        archive.writestr("j/voice.wav", bytes(20 * 1024 * 1024))  # 20 MiB -> about 20 KiB
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        unpack_job_zip(bomb, tmp_path / "slot", ZipLimits())
    assert time.monotonic() - start < BOUND
    assert "voice.wav" in info.value.user_message() or "ratio" in info.value.user_message()
    assert not any((tmp_path / "slot").rglob("voice.wav")) if (tmp_path / "slot").exists() \
        else True


def test_a_job_yaml_of_two_thousand_unknown_keys_gives_a_bounded_message():
    data = {f"k{i}": i for i in range(2000)}
    with pytest.raises(InputError) as info:
        validate_job_keys(data, "job.yaml")
    problem = info.value.problem
    assert "2000 wrong settings" in problem and f"and {2000 - MAX_LISTED} more" in problem
    assert len(info.value.user_message()) < 4000


@pytest.mark.parametrize("text", ["fps: .nan\n", "fps: .inf\n", "fps: -25\n",
                                  "files: [{name: voice.wav, size: -1}]\n",
                                  "files: [{name: voice.wav, size: 1.5e3}]\n",
                                  "? [a, b]\n: c\n", "1: x\n", "face: !!binary aGVsbG8=\n"])
def test_odd_yaml_values_fail_with_a_message_not_a_traceback(job, config, text):
    (job / "job.yaml").write_text(text)
    message = parse_error(job, config)
    assert "job.yaml" in message and "Fix:" in message


def test_a_streaming_wav_with_no_format_block_size_is_not_judged_and_not_crashed(tmp_path):
    data = bytearray(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE")
    data += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 0, 16)  # block align 0
    data += b"data" + struct.pack("<I", 0xFFFFFFFF) + bytes(range(256)) * 40
    path = tmp_path / "voice.wav"
    path.write_bytes(bytes(data))
    assert check_whole(path).state is Whole.UNKNOWN


def test_a_short_streaming_wav_is_refused_as_too_short(tmp_path, config, astronaut_path,
                                                         speech_path):
    short = speech_clip(speech_path, tmp_path / "s.wav", 0.05)
    raw = bytearray(short.read_bytes())
    raw[4:8] = raw[40:44] = struct.pack("<I", 0xFFFFFFFF)
    short.write_bytes(bytes(raw))
    folder = make_job(tmp_path / "in", "tiny", astronaut_path, short)
    assert "at least 0.2 s" in parse_error(folder, config)


def test_the_content_sample_of_a_huge_sparse_file_is_bounded(tmp_path):
    path = tmp_path / "voice.wav"
    with path.open("wb") as fh:
        fh.truncate(8 * 1024**3)  # 8 GiB of holes: a preallocated giant
    start = time.monotonic()
    first = content_sample(path)
    assert time.monotonic() - start < 1.0
    with path.open("r+b") as fh:
        fh.seek(3 * 1024**3)
        fh.write(b"data")  # a write deep inside, size and (here) mtime aside
    assert content_sample(path) != first


def test_hidden_litter_that_is_a_fifo_or_a_folder_is_never_opened(job, config):
    os.mkfifo(job / ".gitkeep")
    (job / ".DS_Store").mkdir()
    seen = verdicts(job, 1.5)
    assert seen[-1].verdict is Verdict.READY, [e.line() for e in seen]
    assert parse_job_folder(job, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_a_folder_that_turns_into_a_file_between_checks_is_not_an_error(job):
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, clock=clock)
    assert tracker.check(job).state is ReadyState.WAITING
    for path in job.iterdir():
        path.unlink()
    job.rmdir()
    job.write_text("now a file")
    verdict = tracker.check(job)
    assert verdict.state is ReadyState.WAITING and "cannot read" in verdict.reason


def test_a_hidden_folder_named_like_a_claim_marker_is_not_adopted(
    tmp_path, monkeypatch, astronaut_path, speech_path
):
    """``.facedrop-claimed.zzz.evil`` is not one of ours (slots are hex): it is never run."""
    from tests.helpers.daemon_pipeline import TestPipeline
    from watcher.daemon import Daemon

    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    config = load_config(write_config(tmp_path / "root", daemon={"settle_seconds": 0.02,
                                                                 "settle_checks": 2}),
                         home=tmp_path / "home")
    clip = speech_clip(speech_path, tmp_path / "c.wav", 0.5)
    make_job(config.paths.inbox, ".facedrop-claimed.zzz.evil", astronaut_path, clip)
    daemon = Daemon(config, lambda c: TestPipeline(c.pipeline))
    assert daemon.run(burst=True, install_signals=False) == 0
    assert list(config.paths.outbox.iterdir()) == []
    assert os.listdir(config.paths.inbox) == [".facedrop-claimed.zzz.evil"]


def test_a_cloud_placeholder_is_never_read_for_its_content_sample(job):
    """Reading an online-only Dropbox/iCloud file waits for its download: never done."""
    from types import SimpleNamespace

    from watcher.readiness import SF_DATALESS

    def stat(path: Path) -> SimpleNamespace:
        st = os.lstat(path)
        flags = SF_DATALESS if path.name == "voice.wav" else 0
        return SimpleNamespace(st_mode=st.st_mode, st_size=st.st_size,
                               st_mtime_ns=st.st_mtime_ns, st_flags=flags)

    sampled: list[str] = []
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, clock=clock, stat=stat,
                               sample=lambda p: sampled.append(p.name) or 1)
    for _ in range(4):
        verdict = tracker.check(job)
        clock.now += 0.5
    assert "cloud placeholder" in verdict.reason
    assert "voice.wav" not in sampled and "face.png" in sampled
