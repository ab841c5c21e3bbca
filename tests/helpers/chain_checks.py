"""Checks shared by the tests that run whole jobs through the real chain."""

from __future__ import annotations

from pathlib import Path

from pipeline.media.frame_count import output_frame_count
from pipeline.media.verify import verify_video
from pipeline.spec import TimingRecord


def animate_note(record: TimingRecord) -> str:
    """The animate stage's note: how many frames were rendered and reused."""
    return next(s.note for s in record.stages if s.name == "animate")


def check_length(out: Path, record: TimingRecord, fps: float) -> None:
    """The video spans the audio to the frame (ceil(duration * fps) frames)."""
    n = output_frame_count(record.audio_seconds, fps)
    assert record.frames == n
    info = verify_video(out)
    assert info.frames == n, (info.frames, n)
