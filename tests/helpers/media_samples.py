"""Small real media files written with PyAV and Pillow, for the wholeness and intake tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

# suffix -> (container format, codec, sample rate)
AUDIO_KINDS: dict[str, tuple[str, str, int]] = {
    ".wav": ("wav", "pcm_s16le", 16000),
    ".mp3": ("mp3", "libmp3lame", 44100),
    ".flac": ("flac", "flac", 16000),
    ".ogg": ("ogg", "libopus", 48000),
    ".aac": ("adts", "aac", 16000),
    ".m4a": ("ipod", "aac", 16000),
    ".mp4": ("mp4", "aac", 16000),
}


def write_audio(path: Path, seconds: float = 1.0, freq: float = 440.0) -> Path:
    """A sine tone in the format ``path``'s suffix names (see ``AUDIO_KINDS``)."""
    fmt, codec, rate = AUDIO_KINDS[path.suffix.lower()]
    n = int(rate * seconds)
    tone = (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_image(path: Path, size: tuple[int, int] = (128, 96), seed: int = 0) -> Path:
    """A noisy RGB picture (noise so that JPEG/PNG data is not trivially small)."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_video(path: Path, frames: int = 6, size: int = 64) -> Path:
    """A few frames of H.264 (or MPEG-4 if H.264 is missing) in an MP4/MOV container."""
    with av.open(str(path), "w") as out:
        try:
            stream = out.add_stream("libx264", rate=25)
        except (av.FFmpegError, ValueError):  # builds without libx264
            stream = out.add_stream("mpeg4", rate=25)
        assert isinstance(stream, av.VideoStream)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((size, size, 3), (i * 30) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
