"""Landmark tracking on rendered crops that never fails a job over one lost frame.

The animated crops are stabilised around the face (the LivePortrait crop follows the photo, not
the head), so the face is where it was a frame ago. When the tracker loses it (a blink of the
landmark model's confidence, or a blurry render) the previous frame's landmarks are the best
estimate; raising ``NoFaceError`` there would fail a job whose photo was fine.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import NoFaceError
from pipeline.face.landmarks import FaceBox, FaceLandmarker


class SteadyTracker:
    """A ``FaceLandmarker`` whose ``track`` keeps the previous landmarks when the face is lost.

    ``lost`` counts the frames where that happened (reported in the timing log).
    """

    def __init__(self, landmarker: FaceLandmarker) -> None:
        self.landmarker = landmarker
        self.lost = 0

    def detect(self, rgb: np.ndarray) -> FaceBox:
        return self.landmarker.detect(rgb)

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        return self.landmarker.landmarks(rgb, box)

    def eyelids(self, rgb: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
        return self.landmarker.eyelids(rgb, lmk468)

    def track(self, rgb: np.ndarray, prev_landmarks: np.ndarray) -> np.ndarray:
        """Tracked landmarks, or ``prev_landmarks`` unchanged if the face cannot be found."""
        try:
            return self.landmarker.track(rgb, prev_landmarks)
        except NoFaceError:
            self.lost += 1
            return np.asarray(prev_landmarks, dtype=np.float32)
