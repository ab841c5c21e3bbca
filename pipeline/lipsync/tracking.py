"""Landmarks for consecutive distinct crops, tracked frame to frame (no detector on the frames).

The engines' per-crop preparation starts here: the photo's landmarks mapped into the first crop
are the hint, each crop's landmarks the next one's. Only without any hint does a detection run,
once, on the first 512 crop (the face fills it).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipeline.face.landmarker import Landmarker


def track_landmarks(crops: Iterable[np.ndarray], first_landmarks: np.ndarray | None,
                    landmarker: Landmarker) -> list[np.ndarray]:
    """(468, 2) float32 landmarks per crop, in order (one pass: crops may be read lazily)."""
    out: list[np.ndarray] = []
    prev = first_landmarks
    for crop in crops:
        if prev is None:
            prev = landmarker.landmarks(crop, landmarker.detect(crop))
        else:
            prev = landmarker.track(crop, prev)
        prev = np.asarray(prev, dtype=np.float32)
        out.append(prev)
    return out
