"""Tracking on rendered crops keeps the last landmarks when the face is lost, and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.steady import SteadyTracker


def test_lost_face_keeps_previous_landmarks_and_is_counted(
    astronaut_path: Path, landmark_weights_dir: Path
) -> None:
    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    landmarker = FaceLandmarker(landmark_weights_dir)
    first = landmarker.landmarks(photo, landmarker.detect(photo))
    tracker = SteadyTracker(landmarker)
    tracked = tracker.track(photo, first)
    assert tracker.lost == 0
    assert np.abs(tracked - first).max() < 3.0  # the same photo: the same face
    blank = np.full_like(photo, 128)
    kept = tracker.track(blank, tracked)
    assert tracker.lost == 1
    np.testing.assert_array_equal(kept, tracked.astype(np.float32))
