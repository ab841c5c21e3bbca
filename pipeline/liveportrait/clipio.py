"""Reading a driving clip: its exact frame rate and size, and its frames one at a time.

A thin PyAV reader for the stage's own needs (helper B's ``pipeline.media.video`` is the
general one; this keeps the stage independent of it). Frames are decoded lazily, so memory does
not grow with the clip's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.errors import InputError


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """A clip's size, exact frame rate and frame count (counted by decoding when unknown)."""

    width: int
    height: int
    fps: Fraction
    frames: int

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps) if self.fps else 0.0


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(
            f"the driving video cannot be opened ({exc})",
            file=path,
            fix="use an .mp4 or .mov video that plays in QuickTime",
        ) from exc
    if not container.streams.video:
        container.close()
        raise InputError("the driving video has no video stream", file=path)
    return container


def probe_clip(path: Path) -> ClipInfo:
    """Size, exact fps (e.g. 30000/1001) and number of frames of a video file."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise InputError("the driving video has no frame rate", file=path)
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        return ClipInfo(stream.width, stream.height, Fraction(rate), int(frames))


def iter_clip_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode the clip's frames one at a time as HxWx3 uint8 RGB."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise InputError(f"the driving video is damaged ({exc})", file=path) from exc
