"""Class 2 of issue 11: a job is never claimed from incomplete input, and never waits forever.

Real media written with PyAV and Pillow, then cut at many generated offsets: every cut must be
``INCOMPLETE`` (never "whole", which would let a half-copied recording run), checked within a
time bound. Readiness is driven with an injected clock: a stalled copy waits, completes and
runs; or stays stalled past the grace period and fails with a message naming the file.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.media.wholeness import ZERO_TAIL, Whole, Wholeness, check_whole
from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from tests.helpers.media_samples import write_audio, write_image, write_video
from watcher.config import load_config
from watcher.jobfolder import parse_job_folder
from watcher.readiness import ReadinessTracker, ReadyState

CHECK_SECONDS = 5.0  # no single check may take longer (a decode is bounded)

MAKERS = {
    ".wav": lambda p: write_audio(p, 1.0),
    ".mp3": lambda p: write_audio(p, 1.0),
    ".flac": lambda p: write_audio(p, 1.0),
    ".ogg": lambda p: write_audio(p, 1.0),
    ".aac": lambda p: write_audio(p, 1.0),
    ".m4a": lambda p: write_audio(p, 1.0),
    ".mp4": lambda p: write_video(p),
    ".mov": lambda p: write_video(p),
    ".png": lambda p: write_image(p),
    ".jpg": lambda p: write_image(p),
    ".webp": lambda p: write_image(p),
}


def cut_points(size: int, rng: random.Random, n: int = 60) -> list[int]:
    """Generated cut offsets: every small size, then random ones, and the last bytes."""
    points = set(range(0, min(size, 48)))
    points |= {rng.randrange(1, size) for _ in range(n)}
    points |= {size - k for k in (1, 2, 3, 4, 8, 16) if size - k > 0}
    return sorted(points)


def timed_check(path: Path) -> Wholeness:
    start = time.monotonic()
    verdict = check_whole(path)
    assert time.monotonic() - start < CHECK_SECONDS
    return verdict


@pytest.mark.parametrize("suffix", sorted(MAKERS))
def test_every_cut_of_a_real_file_is_incomplete(tmp_path, suffix):
    whole = MAKERS[suffix](tmp_path / f"whole{suffix}")
    assert timed_check(whole) == Wholeness(Whole.WHOLE)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    wrong = []
    for offset in cut_points(len(data), random.Random(suffix)):
        cut.write_bytes(data[:offset])
        verdict = timed_check(cut)
        if verdict.state is not Whole.INCOMPLETE:
            wrong.append((offset, verdict))
        assert verdict.reason  # always says why
    assert not wrong, f"{suffix} ({len(data)} bytes): cuts judged not incomplete: {wrong[:5]}"


def test_real_example_files_are_whole(astronaut_path, speech_path):
    assert check_whole(astronaut_path).state is Whole.WHOLE
    assert check_whole(speech_path).state is Whole.WHOLE


@pytest.mark.parametrize("size", [16, 4096, 100_000])
def test_a_preallocated_file_of_zeros_is_incomplete(tmp_path, size):
    path = tmp_path / "voice.wav"
    path.write_bytes(bytes(size))
    assert check_whole(path).state is Whole.INCOMPLETE


def test_a_preallocated_wav_filled_partly_is_suspect(tmp_path):
    """Header and some samples written, the rest still the zeros the writer reserved."""
    whole = write_audio(tmp_path / "w.wav", 8.0)  # 256 KB of samples
    data = bytearray(whole.read_bytes())
    data[len(data) - 2 * ZERO_TAIL :] = bytes(2 * ZERO_TAIL)
    path = tmp_path / "voice.wav"
    path.write_bytes(bytes(data))
    assert check_whole(path).state is Whole.SUSPECT


def test_a_streaming_wav_with_an_unfinished_header_is_incomplete(tmp_path):
    data = bytearray(write_audio(tmp_path / "w.wav", 1.0).read_bytes())
    data[4:8] = struct.pack("<I", 0)  # what a recorder writes until it stops
    path = tmp_path / "voice.wav"
    path.write_bytes(bytes(data))
    assert check_whole(path).state is Whole.INCOMPLETE


def test_a_file_ending_inside_a_header_field_is_incomplete(tmp_path):
    path = tmp_path / "x.mp4"
    ftyp = struct.pack(">I4s8s", 16, b"ftyp", b"isom0000")
    path.write_bytes(ftyp + struct.pack(">I4s", 1, b"mdat") + b"\0\0\0")  # 64-bit size cut
    assert check_whole(path).state is Whole.INCOMPLETE


def test_mutated_real_files_never_raise_or_hang(tmp_path):
    """1500 real files with random bytes overwritten (and some cut): always a verdict, in time."""
    sources = [MAKERS[s](tmp_path / f"src{s}") for s in (".wav", ".mp3", ".flac", ".ogg",
                                                         ".aac", ".m4a", ".png", ".jpg", ".mp4")]
    rng = random.Random(12)
    for i in range(1500):
        src = rng.choice(sources)
        data = bytearray(src.read_bytes())
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            data[at : at + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\0\0\0\x01", b"\0\0\0\0", bytes([rng.randrange(256)])]
            )
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        path = tmp_path / f"m{i % 7}{src.suffix}"
        path.write_bytes(bytes(data))
        assert isinstance(timed_check(path), Wholeness)


def test_a_text_file_is_not_judged(tmp_path):
    path = tmp_path / "face.png"
    path.write_text("this is text, not a PNG, and long enough to sniff\n")
    assert check_whole(path).state is Whole.UNKNOWN


# ---- readiness with an injected clock ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_checks(tracker: ReadinessTracker, folder: Path, clock: Clock, seconds: float):
    """Check every 0.5 s of injected time for ``seconds``; the verdicts in order."""
    verdicts = []
    for _ in range(int(seconds / 0.5)):
        verdicts.append(tracker.check(folder))
        clock.now += 0.5
    return verdicts


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root"), home=tmp_path / "home")


@pytest.fixture
def voice(tmp_path, speech_path) -> Path:
    return speech_clip(speech_path, tmp_path / "full.wav", 1.0)


def test_a_stalled_copy_waits_then_runs_with_the_whole_recording(
    tmp_path, config, astronaut_path, voice
):
    folder = make_job(tmp_path / "in", "stall", astronaut_path, voice)
    full = voice.read_bytes()
    (folder / "voice.wav").write_bytes(full[: len(full) // 2])  # the copy stalls half-way
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 20.0)  # far past the settle window
    assert not any(v.ready for v in verdicts)
    assert "voice.wav to be complete" in verdicts[-1].reason
    (folder / "voice.wav").write_bytes(full)  # the copy resumes and ends
    verdicts = run_checks(tracker, folder, clock, 2.0)
    assert verdicts[-1].state is ReadyState.READY
    assert parse_job_folder(folder, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_a_copy_stalled_past_the_grace_period_fails_naming_the_file(
    tmp_path, config, astronaut_path, voice
):
    folder = make_job(tmp_path / "in", "stall", astronaut_path, voice)
    full = voice.read_bytes()
    (folder / "voice.wav").write_bytes(full[: len(full) // 3])
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=10.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 12.0)
    states = [v.state for v in verdicts]
    assert ReadyState.READY not in states
    assert states[-1] is ReadyState.EXPIRED and states[0] is ReadyState.WAITING
    expired_at = states.index(ReadyState.EXPIRED) * 0.5
    assert 10.0 <= expired_at <= 11.0  # not before the grace period, and promptly after it
    error = verdicts[-1].error(folder, tracker.grace_seconds)
    assert "voice.wav" in error.problem and "10 s" in error.problem
    with pytest.raises(InputError) as info:  # what the claimed folder then fails with
        parse_job_folder(folder, config)
    message = info.value.user_message()
    assert "voice.wav" in message and "incomplete" in message and "Fix:" in message


def test_job_yaml_first_then_a_pause_waits_for_the_audio(tmp_path, config, astronaut_path, voice):
    folder = tmp_path / "in" / "slow"
    folder.mkdir(parents=True)
    (folder / "job.yaml").write_text("fps: 25\n")
    (folder / "face.png").write_bytes(astronaut_path.read_bytes())
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 20.0)
    assert not any(v.ready for v in verdicts)
    assert "waiting for an audio file" in verdicts[-1].reason
    (folder / "voice.wav").write_bytes(voice.read_bytes())
    assert run_checks(tracker, folder, clock, 2.0)[-1].state is ReadyState.READY
    assert parse_job_folder(folder, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_job_yaml_naming_a_file_waits_for_that_file(tmp_path, astronaut_path, voice):
    folder = make_job(tmp_path / "in", "named", astronaut_path, voice, "audio: take2.wav\n")
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    assert "take2.wav" in run_checks(tracker, folder, clock, 5.0)[-1].reason
    (folder / "take2.wav").write_bytes(voice.read_bytes())
    assert run_checks(tracker, folder, clock, 2.0)[-1].ready


def test_a_preallocating_writer_with_a_size_manifest_does_not_run_on_zeros(
    tmp_path, config, astronaut_path, voice
):
    full = voice.read_bytes()
    folder = make_job(
        tmp_path / "in", "prealloc", astronaut_path, voice, f"files:\n  - {{name: voice.wav, "
        f"size: {len(full)}}}\n",
    )
    (folder / "voice.wav").write_bytes(bytes(len(full)))  # reserved, not yet written
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 10.0)
    assert not any(v.ready for v in verdicts)
    assert "zeros" in verdicts[-1].reason
    (folder / "voice.wav").write_bytes(full)
    assert run_checks(tracker, folder, clock, 2.0)[-1].state is ReadyState.READY


def test_a_suspect_file_waits_the_grace_period_then_runs(tmp_path, astronaut_path):
    whole = write_audio(tmp_path / "w.wav", 8.0)
    data = bytearray(whole.read_bytes())
    data[len(data) - 2 * ZERO_TAIL :] = bytes(2 * ZERO_TAIL)  # trailing digital silence
    folder = make_job(tmp_path / "in", "quiet", astronaut_path, whole)
    (folder / "voice.wav").write_bytes(bytes(data))
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=5.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 7.0)
    assert not verdicts[4].ready and "zero bytes" in verdicts[4].reason
    assert verdicts[-1].state is ReadyState.READY


def test_a_truncated_photo_waits(tmp_path, astronaut_path, voice):
    folder = make_job(tmp_path / "in", "photo", astronaut_path, voice)
    data = astronaut_path.read_bytes()
    (folder / "face.png").write_bytes(data[: len(data) * 2 // 3])
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    assert "face.png to be complete" in run_checks(tracker, folder, clock, 5.0)[-1].reason


def test_wholeness_is_decoded_once_per_file_version(tmp_path, astronaut_path, voice):
    folder = make_job(tmp_path / "in", "cache", astronaut_path, voice)
    calls: list[Path] = []

    def counting(path: Path) -> Wholeness:
        calls.append(path)
        return check_whole(path)

    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock, whole=counting)
    verdicts = run_checks(tracker, folder, clock, 10.0)
    assert verdicts[-1].ready
    assert sorted(p.name for p in calls) == ["face.png", "voice.wav"]


def test_the_grace_period_is_configured_and_validated(tmp_path, monkeypatch):
    from pipeline.errors import ConfigError

    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    default = load_config(write_config(tmp_path / "a"), home=tmp_path / "home")
    assert default.daemon.incomplete_grace_seconds > 0
    cfg = load_config(
        write_config(tmp_path / "b", daemon={"incomplete_grace_seconds": 42}), home=tmp_path
    )
    assert cfg.daemon.incomplete_grace_seconds == 42.0
    for bad in (-1, "soon", True):
        path = write_config(tmp_path / f"c{bad}", daemon={"incomplete_grace_seconds": bad})
        with pytest.raises(ConfigError, match="incomplete_grace_seconds"):
            load_config(path, home=tmp_path)
