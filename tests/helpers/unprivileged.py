"""Run a check as an unprivileged user, so permission errors are real even when tests run as
root (root writes into read-only folders, so a chmod alone proves nothing there)."""

from __future__ import annotations

import os
from collections.abc import Callable

NOBODY = 65534


def run_unprivileged(check: Callable[[], str]) -> str:
    """``check()``'s text, run as this user, or, as root, in a forked child that became nobody."""
    if os.geteuid() != 0:
        return check()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root for good, run the check, report, exit without cleanup
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            text = check()
        except BaseException as err:  # noqa: BLE001 - reported to the parent as text
            text = f"{type(err).__name__}: {err}"
        os.write(write_end, text.encode("utf-8", "replace"))
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8")
