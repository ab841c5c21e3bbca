"""Drop known chatter that native libraries print straight to file descriptor 2.

LiteRT's C++ runtime prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` when an
interpreter allocates its tensors, on every run; it offers no log-level switch (it ignores
``TF_CPP_MIN_LOG_LEVEL``), and turning the delegate off would make the landmarks slower. So for
the few milliseconds of interpreter creation fd 2 points at a temporary file; afterwards every
line captured there that is not known chatter is written back to the real stderr, so a real
warning or error is never lost, only delayed until the block ends.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STDERR_FD = 2
_LOCK = threading.Lock()  # fd 2 is process-wide: one redirect at a time


def is_litert_chatter(line: str) -> bool:
    """LiteRT's line announcing its CPU delegate (printed once per process, at INFO level)."""
    return line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate")


@contextmanager
def filtered_stderr(drop: Callable[[str], bool] = is_litert_chatter,
                    fd: int = STDERR_FD) -> Iterator[None]:
    """Within the block, capture what is written to ``fd``; then pass on every line not dropped."""
    with _LOCK, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not drop(line))
            if kept:
                os.write(fd, kept.encode("utf-8"))
