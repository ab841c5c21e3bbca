"""The daemon's log: size-bounded rotating files, one line per job state change.

``setup_logging(log_dir)`` attaches a ``RotatingFileHandler`` (``facedrop.log`` plus a few
numbered backups, each at most ``max_bytes``) to the ``facedrop`` logger, under which every
facedrop module logs. ``log_job_state`` writes the one line per job state change, with the job
name, stage timings and the error's first line. ``tail``/``follow`` serve ``facedrop logs [-f]``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.spec import StageTiming

LOG_NAME = "facedrop.log"
MAX_BYTES = 5_000_000
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ROOT_LOGGER = "facedrop"
JOBS = logging.getLogger("facedrop.jobs")


def log_file(log_dir: Path) -> Path:
    """The current log file in ``log_dir``."""
    return log_dir / LOG_NAME


def setup_logging(log_dir: Path, *, level: int = logging.INFO, max_bytes: int = MAX_BYTES,
                  backups: int = BACKUPS) -> logging.Handler:
    """Log the ``facedrop`` logger tree to ``log_dir/facedrop.log``, rotating by size.

    Idempotent: a handler from an earlier call is replaced. Returns the handler (pass it to
    ``teardown_logging`` on shutdown).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    teardown_logging()
    handler = logging.handlers.RotatingFileHandler(
        log_file(log_dir), maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.set_name("facedrop-file")
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def teardown_logging() -> None:
    """Remove and close the handler ``setup_logging`` installed, if any."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in [h for h in logger.handlers if h.get_name() == "facedrop-file"]:
        logger.removeHandler(handler)
        handler.close()


def job_line(job: str, state: str, *, attempt: int | None = None,
             stages: Iterable[StageTiming] = (), total: float | None = None,
             error: str = "") -> str:
    """``job="name" state=done attempt=1 total=12.30s stages=motion:4.10s,lipsync:2.00s``."""
    parts = [f"job={json.dumps(job)}", f"state={state}"]
    if attempt is not None:
        parts.append(f"attempt={attempt}")
    if total is not None:
        parts.append(f"total={total:.2f}s")
    timings = ",".join(f"{s.name}:{s.seconds:.2f}s" for s in stages)
    if timings:
        parts.append(f"stages={timings}")
    first = next((line.strip() for line in error.splitlines() if line.strip()), "")
    if first:
        parts.append(f"error={json.dumps(first)}")
    return " ".join(parts)


def log_job_state(job: str, state: str, *, attempt: int | None = None,
                  stages: Iterable[StageTiming] = (), total: float | None = None,
                  error: str = "", logger: logging.Logger = JOBS) -> str:
    """Log one job state change as one line (warning level for failures); returns the line."""
    line = job_line(job, state, attempt=attempt, stages=stages, total=total, error=error)
    logger.log(logging.WARNING if state == "failed" else logging.INFO, line)
    return line


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file (with their newlines), reading from the end."""
    if lines <= 0 or not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(8192, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", errors="replace")
    return text.splitlines(keepends=True)[-lines:]


def _open_text(path: Path):  # noqa: ANN202 - a text file object
    return path.open("r", encoding="utf-8", errors="replace")


def follow(path: Path, emit: Callable[[str], object], *, poll: float = 0.5,
           sleep: Callable[[float], None] = time.sleep,
           keep_going: Callable[[], bool] = lambda: True) -> None:
    """Print lines appended to ``path`` from now on, across rotations, until stopped.

    Polls every ``poll`` seconds (Ctrl-C raises ``KeyboardInterrupt`` out of ``sleep``). A
    rotation (a new file under the name, or a shorter one) is read from its start.
    """
    handle = None
    inode = None
    try:
        while keep_going():
            if handle is None and path.exists():
                handle = _open_text(path)
                inode = os.fstat(handle.fileno()).st_ino
                handle.seek(0, os.SEEK_END)
            if handle is not None:
                for line in iter(handle.readline, ""):
                    emit(line)
                try:
                    st = path.stat()
                except FileNotFoundError:
                    st = None
                if st is None or st.st_ino != inode or st.st_size < handle.tell():
                    for line in iter(handle.readline, ""):  # what the old file got last
                        emit(line)
                    handle.close()  # rotated: read the new file from its start
                    handle = _open_text(path) if st is not None else None
                    inode = os.fstat(handle.fileno()).st_ino if handle is not None else None
                    continue
            sleep(poll)
    finally:
        if handle is not None:
            handle.close()
