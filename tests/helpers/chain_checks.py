"""Checks shared by the tests that run whole jobs through the real chain."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from PIL import Image

from pipeline.media.frame_count import output_frame_count
from pipeline.media.verify import verify_video
from pipeline.spec import TimingRecord
from tests.helpers.clips import make_clip
from tests.helpers.daemon_harness import speech_clip


def portrait(astronaut_path: Path, dest: Path) -> Path:
    """The chain tests' photo at ``dest``: 512x448, not square, long side above a 384
    ``max_size``."""
    Image.open(astronaut_path).convert("RGB").crop((0, 0, 512, 448)).save(dest, quality=92)
    return dest


def motion_job_folder(root: Path, astronaut_path: Path, speech_path: Path) -> Path:
    """``root/job`` (a face photo and 0.5 s of speech), the one job folder the motion-source
    tests run every way, and the two-frame library clip ``root/d/nod.mp4``."""
    (root / "d").mkdir()
    make_clip(root / "d" / "nod.mp4", astronaut_path, 2, Fraction(25))
    job = root / "job"
    job.mkdir()
    portrait(astronaut_path, job / "face.jpg")
    speech_clip(speech_path, job / "voice.wav", 0.5)
    return job


def animate_note(record: TimingRecord) -> str:
    """The animate stage's note: how many frames were rendered and reused."""
    return next(s.note for s in record.stages if s.name == "animate")


def check_length(out: Path, record: TimingRecord, fps: float) -> None:
    """The video spans the audio to the frame (ceil(duration * fps) frames)."""
    n = output_frame_count(record.audio_seconds, fps)
    assert record.frames == n
    info = verify_video(out)
    assert info.frames == n, (info.frames, n)
