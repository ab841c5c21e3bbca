"""The file types a job may contain, by suffix: one list for the parser, readiness and messages."""

from __future__ import annotations

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".heic")
AUDIO_EXT = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg")
VIDEO_EXT = (".mp4", ".mov")


def spoken(exts: tuple[str, ...]) -> str:
    """``('.wav', '.mp3', '.ogg')`` -> ``'.wav, .mp3 or .ogg'`` for messages."""
    return ", ".join(exts[:-1]) + f" or {exts[-1]}" if len(exts) > 1 else exts[0]
