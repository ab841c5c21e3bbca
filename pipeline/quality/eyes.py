"""The eye ratios of a job's rendered crops, for the blink count of its quality report.

A job's crops repeat (a repeat-avatar job renders a few dozen distinct crops for minutes of
video), so the iris model runs once per distinct crop, on the crop before lip sync (lip sync
changes only the mouth), with the crop's tracked landmarks: two 64x64 passes of a small network
per distinct crop, nothing per output frame. If the iris model cannot run (its weights are
missing), blinks are not counted and nothing else changes: scoring never fails a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.ratios import raw_eye_ratio

log = logging.getLogger("facedrop.quality")


class CropEyes:
    """Raw eye ratios (2,) per distinct crop, measured on the crop's first sight."""

    def __init__(self, landmarker: Callable[[], FaceLandmarker],
                 crop_landmarks: Sequence[np.ndarray]) -> None:
        self._landmarker = landmarker
        self._landmarks = crop_landmarks
        self.ratios: dict[int, np.ndarray] = {}
        self.failed = False

    def see(self, crop: int, rgb: np.ndarray) -> None:
        if self.failed or crop in self.ratios:
            return
        try:
            lids = self._landmarker().eyelids(np.asarray(rgb), np.asarray(self._landmarks[crop]))
            self.ratios[crop] = raw_eye_ratio(lids)
        except Exception as exc:  # the blink count is optional; the report goes on without it
            log.warning("blinks not counted: %s", getattr(exc, "problem", exc))
            self.failed = True

    def series(self, crop_ids: Sequence[int]) -> np.ndarray | None:
        """(T, 2) ratios of the crops shown at each 25 fps frame, or None if any is missing."""
        if self.failed or any(c not in self.ratios for c in crop_ids):
            return None
        return np.stack([self.ratios[c] for c in crop_ids])
