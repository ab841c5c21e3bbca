"""Say which file a decoder is about to read, before it reads it.

A native crash (a segfault in FFmpeg, an abort in a codec) kills the process that decodes, so it
cannot explain itself afterwards. The decoders call ``decoding(path, what)`` first; the worker
child process (``watcher.child``) installs a reporter that sends this to its supervisor at once,
so an ``error.txt`` can name the file that was being read when the child died. Without a
reporter (tests, ``facedrop score``) this does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Reporter = Callable[[str, str], None]  # (what is happening, the file) -> None

_reporter: list[Reporter] = []


def set_reporter(reporter: Reporter | None) -> None:
    """Install (or with None remove) the process's reporter."""
    _reporter.clear()
    if reporter is not None:
        _reporter.append(reporter)


def doing(what: str) -> None:
    """A step that reads no particular file is starting ("rendering the video")."""
    for report in _reporter:
        report(what, "")


def decoding(path: Path | str, what: str) -> None:
    """``what`` ("the audio file") at ``path`` is about to be decoded."""
    for report in _reporter:
        report(f"decoding {what}", str(path))
