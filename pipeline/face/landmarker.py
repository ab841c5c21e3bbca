"""What the stages ask of a face landmarker: detect, landmark, track, refine the eyelids.

``pipeline.face.landmarks.FaceLandmarker`` (MediaPipe's BlazeFace and FaceMesh) is the one
implementation; the stages take this Protocol so tests can pass another real one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # only a type: importing landmarks here would tie the Protocol to it
    from pipeline.face.landmarks import FaceBox


class Landmarker(Protocol):
    def detect(self, rgb: np.ndarray) -> FaceBox:
        """The largest face in an RGB uint8 image (``NoFaceError`` if none usable)."""
        ...

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        """468 FaceMesh landmarks (468, 2) in image pixels for a detected face."""
        ...

    def track(self, rgb: np.ndarray, prev_landmarks: np.ndarray) -> np.ndarray:
        """The next frame's landmarks from the previous frame's (detecting afresh if lost)."""
        ...

    def eyelids(self, rgb: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
        """(2, 16, 2) refined eyelid outlines (image-left eye first) for the eye ratios."""
        ...
