"""The readiness check's decoding, in a child process.

Deciding whether a compressed recording or an image is whole decodes it (PyAV, Pillow), and the
daemon does that while a job is still in the inbox, before any attempt exists. A file that
crashes or hangs a decoder must not take the daemon with it, so ``IsolatedWholeness`` runs
``check_whole`` in one spawned child, kept between checks (a check costs a message, not a
start-up). If the child dies or does not answer in time, it is replaced and the file is
judged ``UNKNOWN``: the settle checks have already seen it stop changing, so the job is
claimed, and the attempt's own worker child meets the same crash, counts it and names the file
in ``error.txt``.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from pipeline.media.wholeness import DECODE_SECONDS, Whole, Wholeness, check_whole

log = logging.getLogger("facedrop.readiness")

ANSWER_SECONDS = DECODE_SECONDS + 10.0  # the bounded decode, plus a fresh child's start-up
Check = Callable[[Path], Wholeness]


def _serve(conn: Connection, check: Check) -> None:
    """The child: answer one path at a time until the parent closes the pipe (or dies)."""
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(check(path))


class IsolatedWholeness:
    """``check_whole`` (or ``check``: a module-level function, as spawn pickles it by name) in a
    supervised child; a drop-in for ``ReadinessTracker(whole=...)``."""

    def __init__(self, check: Check = check_whole, answer_seconds: float = ANSWER_SECONDS
                 ) -> None:
        self._check = check
        self._answer_seconds = answer_seconds
        self._child: tuple[BaseProcess, Connection] | None = None

    def __call__(self, path: Path) -> Wholeness:
        try:
            process, conn = self._child or self._start()
            conn.send(path)
            if conn.poll(self._answer_seconds):
                answer: Wholeness = conn.recv()
                return answer
            reason = f"did not finish its check in {self._answer_seconds:.0f} s"
        except (EOFError, OSError):  # the child died: a native crash in a decoder
            reason = "crashed the decoder while it was checked"
        self.close()
        log.warning("%s %s; it is left to the job's own attempt", path.name, reason)
        return Wholeness(Whole.UNKNOWN, reason)

    def _start(self) -> tuple[BaseProcess, Connection]:
        ctx = multiprocessing.get_context("spawn")  # never fork a process holding threads
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(child, self._check), daemon=True,
                              name="facedrop-wholeness")
        process.start()
        child.close()
        self._child = (process, parent)
        return self._child

    def close(self) -> None:
        """Stop the child (killed: it holds nothing worth a graceful exit)."""
        if self._child is None:
            return
        process, conn = self._child
        self._child = None
        conn.close()
        process.kill()
        process.join(2.0)
