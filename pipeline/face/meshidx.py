"""Named FaceMesh (468-point) index sets, and how they stand in for other landmark schemes.

"Left"/"right" here mean the IMAGE's left/right for a face looking at the camera, so ``EYE_L``
is the subject's right eye (MediaPipe's FACEMESH_RIGHT_EYE). Indices are MediaPipe's canonical
face mesh (``mediapipe/python/solutions/face_mesh_connections.py``: FACEMESH_*_EYE,
FACEMESH_*_EYEBROW, FACEMESH_LIPS, FACEMESH_FACE_OVAL).
"""

from __future__ import annotations

import numpy as np

# Face oval, clockwise from the top of the forehead (FACEMESH_FACE_OVAL).
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                      378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                      162, 21, 54, 103, 67, 109])
# The part of the oval InsightFace's 106/203 contour also covers: temple (just above the eye
# corners) round the chin to the other temple. The oval's points above 127/356 (162, 21, 54, 103,
# 67, 109, 10, 338, 297, 332, 284, 251, 389) lie on the forehead/hairline, which the 106-point
# contour does not reach.
JAW = np.array([127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379,
                365, 397, 288, 361, 323, 454, 356])
CHIN = 152
# Lower jaw, ear-lobe level to chin to ear-lobe level: the lower-face mask's outline.
LOWER_JAW = np.array([93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365,
                      397, 288, 361, 323])
NOSE_BOTTOM = np.array([98, 97, 2, 326, 327])

BROW_L = np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46])
BROW_R = np.array([336, 296, 334, 293, 300, 276, 283, 282, 295, 285])
EYE_L = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246])
EYE_R = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466])
NOSE = np.array([168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 129, 358, 64, 294, 48,
                 278])
LIPS_OUTER = np.array([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0,
                       37, 39, 40, 185])
LIPS_INNER = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13,
                       82, 81, 80, 191])

# Eye centres as LivePortrait's parse_pt2_from_pt106/203 take them: the mean of the two corners
# and the mid upper/lower lid points (203-point [0, 6, 12, 18] / [24, 30, 36, 42]).
EYE_L_CENTRE = np.array([33, 159, 133, 145])
EYE_R_CENTRE = np.array([263, 386, 362, 374])
MOUTH_L, MOUTH_R = 61, 291  # outer mouth corners (203-point 48 / 66)
LIP_INNER_TOP, LIP_INNER_BOTTOM = 13, 14  # inner lip midpoints (203-point 90 / 102)
NOSE_TIP = 1

# The FaceMesh stand-in for InsightFace's 106 points: contour without forehead, brows, eyes,
# nose, lips. The LivePortrait crop's extent is computed from these.
INSIGHTFACE_LIKE = np.concatenate([JAW, BROW_L, BROW_R, EYE_L, EYE_R, NOSE, LIPS_OUTER,
                                   LIPS_INNER])

# Every FaceMesh point the geometry reads: the crop's extent points, the eye/mouth centres, the
# lip and eye ratio points. Calibration and crop-reference fixtures keep only these (NaN
# elsewhere when rebuilt), so a change that reads another point fails loudly instead of silently
# using zeros.
MESH_POINTS = np.unique(np.concatenate([
    INSIGHTFACE_LIKE, EYE_L_CENTRE, EYE_R_CENTRE,
    [MOUTH_L, MOUTH_R, LIP_INNER_TOP, LIP_INNER_BOTTOM],
]))
