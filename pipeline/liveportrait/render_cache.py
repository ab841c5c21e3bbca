"""The rendered-crop cache: animated 512x512 crops of (face, driving clip, options, models).

One entry per key is a folder ``<cache_dir>/render/<key>/`` holding

- ``crops.u8``: a raw uint8 memmap of shape (n_driving, 512, 512, 3), one slot per driving frame
  (a sparse file: only rendered slots take disk space);
- ``done.npy``: which slots hold a finished render, rewritten atomically after each chunk, so a
  crash loses at most the chunk in flight and never marks a half-written crop as done.

A job renders only the driving frames it needs that are not done yet; the next job with the same
face and clip renders nothing. Crops are never all held in RAM: they are written to and read from
the memory map, and each crop's pages are handed back to the OS once it is written (flushed) or
copied out, so the process's resident memory stays flat however many frames a video has (a
mapped page stays resident once touched: 3000 frames of a 2-minute voice job would otherwise
count 2.3 GB). The cache is bounded by total rendered bytes: before a job renders, the least
recently used other entries are deleted until the rest fits ``render_cache_mb`` (the entry in
use is kept even when it alone is larger, and is evicted by a later job).
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import shutil
import time
from pathlib import Path

import numpy as np

from pipeline.atomic import write_bytes_atomic

CROP = 512
FRAME_BYTES = CROP * CROP * 3


def render_key(*parts: str) -> str:
    """A cache key from identity strings (face crop hash, clip hash, options, model version)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class RenderEntry:
    """One cached sequence of rendered crops, indexed by driving frame."""

    def __init__(self, folder: Path, n_driving: int) -> None:
        self.folder = folder
        self.n_driving = n_driving
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "crops.u8"
        shape = (n_driving, CROP, CROP, 3)
        done_path = folder / "done.npy"
        valid = data.is_file() and data.stat().st_size == n_driving * FRAME_BYTES
        if valid and done_path.is_file():
            done = np.load(done_path, allow_pickle=False)
            valid = done.shape == (n_driving,) and done.dtype == np.bool_
        if not valid:  # new, or left by a different clip length / a crash: start empty
            with data.open("wb") as f:
                f.truncate(n_driving * FRAME_BYTES)  # sparse: no disk used until written
            done = np.zeros(n_driving, dtype=np.bool_)
        self.done = done
        with data.open("r+b") as f:  # the mapping keeps the file open by itself
            self._map = mmap.mmap(f.fileno(), n_driving * FRAME_BYTES)
        self.frames: np.ndarray = np.ndarray(shape, dtype=np.uint8, buffer=self._map)
        self._save_done()

    def missing(self, wanted: np.ndarray) -> np.ndarray:
        """The driving frames among ``wanted`` that are not rendered yet."""
        wanted = np.asarray(wanted, dtype=np.int64)
        return wanted[~self.done[wanted]]

    def write(self, indices: np.ndarray, crops: np.ndarray) -> None:
        """Store rendered crops (B,512,512,3) uint8 for driving frames ``indices``, durably."""
        for slot, crop in zip(np.asarray(indices), crops, strict=True):
            self.frames[int(slot)] = crop
        self._map.flush()
        for slot in np.asarray(indices):
            self._release(int(slot))
        self.done[np.asarray(indices)] = True
        self._save_done()

    def read(self, driving_index: int) -> np.ndarray:
        """The crop of one driving frame as a (512,512,3) uint8 array (a copy, not a view)."""
        if not self.done[driving_index]:
            raise KeyError(f"driving frame {driving_index} is not rendered")
        crop = np.array(self.frames[driving_index])
        self._release(driving_index)
        return crop

    def _release(self, slot: int) -> None:
        """Drop one crop's pages from this process (the data stays in the file and the OS's
        cache). Slots are page-aligned: FRAME_BYTES is 192 pages of 4 KiB (or 48 of 16 KiB)."""
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED, slot * FRAME_BYTES, FRAME_BYTES)

    def _save_done(self) -> None:
        buffer = io.BytesIO()
        np.save(buffer, self.done, allow_pickle=False)
        write_bytes_atomic(self.folder / "done.npy", buffer.getvalue())


class RenderCache:
    """All entries under ``<cache_dir>/render``, bounded by ``limit_bytes`` of rendered crops."""

    def __init__(self, cache_dir: Path, limit_bytes: int) -> None:
        self.root = cache_dir / "render"
        self.limit_bytes = limit_bytes

    def open(self, key: str, n_driving: int) -> RenderEntry:
        """Open (or create) the entry ``key`` and mark it most recently used."""
        folder = self.root / key
        entry = RenderEntry(folder, n_driving)
        now = time.time()
        os.utime(folder / "done.npy", (now, now))
        return entry

    def evict(self, keep: str, incoming_bytes: int = 0) -> list[str]:
        """Delete least recently used entries (never ``keep``) until the total fits the limit."""
        entries = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            done = folder / "done.npy"
            if folder.name == keep or not done.is_file():
                continue
            try:
                size = int(np.load(done, allow_pickle=False).sum()) * FRAME_BYTES
            except (OSError, ValueError):
                size = 0  # unreadable: evict first
            entries.append((done.stat().st_mtime, size, folder))
        kept = self._size_of(keep) + incoming_bytes
        total = kept + sum(size for _, size, _ in entries)
        removed = []
        for _, size, folder in sorted(entries, key=lambda e: e[0]):
            if total <= self.limit_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed.append(folder.name)
        return removed

    def _size_of(self, key: str) -> int:
        done = self.root / key / "done.npy"
        if not done.is_file():
            return 0
        return int(np.load(done, allow_pickle=False).sum()) * FRAME_BYTES
