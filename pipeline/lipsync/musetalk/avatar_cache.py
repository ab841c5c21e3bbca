"""The avatar cache: what a latent-space lip-sync engine prepares once per distinct crop.

MuseTalk's official "avatar preparation" encodes each reference frame's VAE latents (and its
blend mask) once and reuses them for every utterance. Here the distinct animated crops are the
avatar frames: each one's prepared data is stored under ``<cache_dir>/avatar/<engine version>/``
in a file named by a content hash of the crop's pixels and its face box, so a repeat job with
the same face and driving clip (whose crops come from the render cache, bit for bit) runs no VAE
encoder and no face parser. A different checkpoint, dtype or engine code is a different
version folder: old entries simply stop matching.

Entries are ``.npz`` files of plain arrays (no pickles), written atomically; an unreadable one
is deleted and counts as a miss. The folder is bounded: after a job stores new entries, the
least recently used ones are deleted until the rest fit ``limit_bytes``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from pipeline.atomic import write_bytes_atomic

ROOT = "avatar"


def avatar_key(crop: np.ndarray, box: tuple[int, int, int, int]) -> str:
    """The content address of one distinct crop's preparation: its pixels and its face box."""
    digest = hashlib.sha256(np.ascontiguousarray(crop).tobytes())
    digest.update(np.asarray(crop.shape, np.int64).tobytes())
    digest.update(np.asarray(box, np.int64).tobytes())
    return digest.hexdigest()[:32]


class AvatarCache:
    """Prepared arrays per (engine version, crop key), bounded by ``limit_bytes`` on disk."""

    def __init__(self, cache_dir: Path, version: str, limit_bytes: int) -> None:
        self.root = cache_dir / ROOT
        self.folder = self.root / version
        self.limit_bytes = limit_bytes

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key`` (marked recently used), or None on a miss."""
        path = self._path(key)
        try:
            with path.open("rb") as f:
                data = np.load(f, allow_pickle=False)
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz archive")
                with data:
                    arrays = {name: np.array(data[name]) for name in data.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)  # torn or tampered: recompute
            return None
        now = time.time()
        os.utime(path, (now, now))
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Store ``arrays`` under ``key`` atomically (a crash leaves the old entry or none)."""
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._path(key), buffer.getvalue())

    def evict(self) -> int:
        """Delete least recently used entries (any version) until the rest fit the limit;
        returns how many were deleted."""
        entries = []
        for path in self.root.glob("*/*.npz") if self.root.is_dir() else []:
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.limit_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed
