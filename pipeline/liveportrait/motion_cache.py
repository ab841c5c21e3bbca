"""The keypoint cache: a driving clip's motion, extracted once, stored as an official template.

Entries live at ``<cache_dir>/motion/<clip sha256>-<model version>.pkl`` (see ``hashing``):
the same clip bytes with the same motion-extractor checkpoint always hit, a changed clip or
checkpoint misses. Entries are written atomically and read with the restricted unpickler, so a
tampered cache file is refused (and dropped) rather than executed.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.liveportrait.template import DrivingMotion, load_template, save_template


class MotionCache:
    """Driving motion keyed by (clip content hash, model version)."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "motion"

    def path_for(self, clip_sha256: str, version: str) -> Path:
        return self.root / f"{clip_sha256}-{version}.pkl"

    def get(self, clip_sha256: str, version: str) -> DrivingMotion | None:
        """The cached motion, or None on a miss (an unreadable entry is deleted, then a miss)."""
        path = self.path_for(clip_sha256, version)
        if not path.is_file():
            return None
        try:
            return load_template(path)
        except InputError:
            path.unlink(missing_ok=True)
            return None

    def put(self, clip_sha256: str, version: str, motion: DrivingMotion) -> Path:
        """Store ``motion``; returns the entry's path."""
        path = self.path_for(clip_sha256, version)
        save_template(motion, path)
        return path

    def has_clip(self, clip_sha256: str) -> bool:
        """Whether any model version's motion of this clip is cached (for ``drivers list``)."""
        return self.root.is_dir() and any(self.root.glob(f"{clip_sha256}-*.pkl"))
