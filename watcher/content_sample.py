"""A cheap fingerprint of a file's bytes, for writes that change neither its size nor its mtime.

A writer that preallocates a file to its full size (so a size-only ``files:`` manifest is
already satisfied) and then fills it through ``mmap``, or resets the mtime it writes, leaves
size and mtime still across the settle checks while the content keeps changing. Settling then
compares this fingerprint too: a CRC of the head, the tail, ``SPREAD`` blocks evenly across the
file, and the blocks a binary search visits to find where trailing zeros begin (so a
sequential fill of zeros is seen at any speed, not only when it crosses a fixed sample).

Any deterministic function of the bytes is safe here: unchanged content always gives the same
number, so it can only delay a job that is really being written, never hold a still one. It
reads at most about ``2 * SPREAD + 40`` blocks of ``BLOCK`` bytes. Only regular files are
opened (non-blocking, no links followed): a FIFO is never read.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

BLOCK = 4096
SPREAD = 16


def content_sample(path: Path) -> int:
    """The fingerprint of ``path``; 0 if it cannot be opened as a regular file."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        return _fingerprint(fd, st.st_size)
    except OSError:
        return 0
    finally:
        os.close(fd)


def _fingerprint(fd: int, size: int) -> int:
    blocks = max(1, -(-size // BLOCK))
    picks = {0, blocks - 1} | {blocks * i // SPREAD for i in range(SPREAD)}
    crc = zlib.crc32(str(_zero_frontier(fd, blocks)).encode())
    for block in sorted(picks):
        crc = zlib.crc32(os.pread(fd, BLOCK, block * BLOCK), crc)
    return crc


def _zero_frontier(fd: int, blocks: int) -> int:
    """The first block of the file's trailing all-zero run, found by binary search.

    Exact for a file filled from the front (data, then preallocated zeros); for any other file
    it is still a fixed function of its bytes.
    """
    lo, hi = 0, blocks  # invariant: blocks >= hi are taken as zeros, lo is below the frontier
    while lo < hi:
        mid = (lo + hi) // 2
        if os.pread(fd, BLOCK, mid * BLOCK).count(0) == BLOCK:
            hi = mid
        else:
            lo = mid + 1
    return lo
