"""Cheap checks on a job's media before it runs, and on the finished video before it is kept.

These read headers only (Pillow for images, PyAV for audio and video), so a bad job fails in
milliseconds with a message that names the file, instead of deep inside the pipeline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError, MediaError


def image_size(path: Path, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an image, from its header; ``InputError`` if unreadable or too large."""
    if path.stat().st_size == 0:
        raise InputError("the face photo is an empty file", fix="submit the photo again", file=path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (an error under strict warning filters) on very large images; our own
            # limit below is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        raise InputError(
            "the face photo is not an image facedrop can read",
            fix="use a JPEG, PNG or WebP photo",
            file=path,
        ) from err
    if width * height > max_pixels:
        raise InputError(
            f"the face photo has {width}x{height} = {width * height} pixels, more than the "
            f"limit of {max_pixels}",
            fix="resize the photo (a face of a few hundred pixels is plenty)",
            file=path,
        )
    return width, height


def audio_seconds(path: Path, max_seconds: float) -> float:
    """Duration of an audio file; ``InputError`` if empty, not audio, silent-length or too long."""
    if path.stat().st_size == 0:
        raise InputError("the audio file is empty", fix="submit the recording again", file=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError("the audio file has no audio stream", file=path)
            stream = container.streams.audio[0]
            seconds = _duration(container, stream)
    except av.error.FFmpegError as err:
        raise InputError(
            "the audio file is not audio facedrop can read",
            fix="use WAV, MP3, M4A, AAC, FLAC or OGG",
            file=path,
        ) from err
    if seconds <= 0:
        raise InputError("the audio file contains no sound samples", file=path)
    if seconds > max_seconds:
        raise InputError(
            f"the audio is {seconds:.1f} s long, more than the limit of {max_seconds:g} s",
            fix="split it into shorter jobs or raise limits.max_audio_seconds",
            file=path,
        )
    return seconds


def _duration(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    samples = sum(frame.samples for frame in container.decode(stream))  # no header length
    return samples / stream.rate if stream.rate else 0.0


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """What the finished video was verified to contain."""

    width: int
    height: int
    frames: int
    video_seconds: float
    audio_seconds: float


def verify_video(path: Path, expected_seconds: float, fps: float) -> VideoCheck:
    """Check the finished file: H.264 video + AAC audio, both about as long as the input audio."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                raise MediaError("the output video lacks a video or an audio stream", file=path)
            v, a = container.streams.video[0], container.streams.audio[0]
            if v.codec_context.name != "h264" or a.codec_context.name != "aac":
                raise MediaError(
                    f"the output has codecs {v.codec_context.name}/{a.codec_context.name}, "
                    "expected h264/aac",
                    file=path,
                )
            frames = sum(1 for _ in container.demux(v) if _.size)
            check = VideoCheck(
                v.codec_context.width,
                v.codec_context.height,
                frames,
                frames / fps,
                float(a.duration * a.time_base) if a.duration else 0.0,
            )
    except av.error.FFmpegError as err:
        raise MediaError(f"the output video cannot be read back ({err})", file=path) from err
    tolerance = 2.0 / fps + 0.1  # one frame of rounding each side plus AAC priming
    for what, seconds in (("video", check.video_seconds), ("audio", check.audio_seconds)):
        if abs(seconds - expected_seconds) > tolerance:
            raise MediaError(
                f"the output {what} lasts {seconds:.2f} s, "
                f"the input audio {expected_seconds:.2f} s",
                file=path,
            )
    return check
