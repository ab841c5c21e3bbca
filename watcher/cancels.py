"""Cancel requests for the local queue: the CLI and the studio page ask, the daemon acts.

Only the daemon writes the queue, so another process asks by writing an empty file
``<state>/cancel/<job id>``; the daemon's loop applies it (a queued job ends failed at once, a
running one stops at its next chunk boundary and ends failed) and removes the request when the
job is final. A fleet cancels through Redis instead (``watcher.fleet.ledger``).
"""

from __future__ import annotations

import os
from pathlib import Path

CANCEL_DIR = "cancel"
CANCELLED_MESSAGE = (
    "Error: the job was cancelled (facedrop cancel or the studio page) before it finished.\n"
    "Fix: nothing is wrong with the files; submit the job again (facedrop retry) to make it.\n"
)


class CancelRequests:
    """The request files under one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / CANCEL_DIR

    def request(self, job_id: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / str(job_id), os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)

    def pending(self) -> list[int]:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def clear(self, job_id: int) -> None:
        try:
            os.unlink(self.folder / str(job_id))
        except FileNotFoundError:
            pass
