"""Eye and lip opening ratios (LivePortrait's c_eyes / c_lip), on the official 203-point scale.

Official ``src/utils/retargeting_utils.py`` on the 203-point landmarks:
``calc_eye_close_ratio``: left = |p6 - p18| / |p0 - p12|, right = |p30 - p42| / |p24 - p36|
(eye opening: mid upper lid to mid lower lid, over eye width: corner to corner), and
``calc_lip_close_ratio``: |p90 - p102| / |p48 - p66| (inner lip opening at the centre over
mouth width, corner to corner), each with +1e-6 in the denominator. The first eye is the one on
the image's left, the order the 203-point eyes come in.

Our points and the transform onto the official scale (issue 15, ``pipeline.liveportrait.
calibration``; issue 19, ``pipeline.liveportrait.eyeloo``):
- eyes: the refined eyelid outline of MediaPipe's iris model (``iris.py``; 16 points: lower lid
  0-8 corner to corner, upper lid 9-15 without corners). FaceMesh's own lids (159/145) barely
  follow a closing eye: on the official clip d1 an eye the official template reads at 0.12 read
  0.29. The eye is read as two heights over the corner-to-corner width (``lid_heights``): the
  upper lid's highest point above the line through the corners and the lower lid's lowest point
  below it. The two move differently (shut, the iris model's upper lid drops to the line or
  below while its lower lid stays ~0.08 below, the 203-point model reads ~0.01), so each gets
  its own weight. A third term, the nose drop (``nose_drop``: how far FaceMesh's nose tip sits
  below the line through the outer eye corners, over their distance), carries what the lids
  miss between people: with the same lid heights the 203-point model reads a face whose nose
  tip sits lower (a head tipped forward, or a longer nose) as less open. So
  ``official = max(0, EYE_UP * upper + EYE_LOW * lower + EYE_NOSE * drop + EYE_B)``, all per
  frame, so a single photo is read as a clip's frame is;
- lips: FaceMesh inner-lip midpoints 13/14 over mouth corners 61/291, mapped linearly,
  ``official = max(0, A * ours + B)``.
The coefficients are fitted by least squares on the official driving templates d1, d2, d5, d7,
d8 of KwaiVGI/LivePortrait (per-frame ``c_d_eyes_lst`` / ``c_d_lip_lst``, 633 frames: 16, 16,
148, 178, 275; each clip weighted equally, both eyes pooled) against our points measured on the
matching clips. The measured points are the fixtures ``tests/fixtures/calibration/d*.npz``;
``tests/test_calibration.py`` re-fits them and checks these constants. Every consumer (source
ratios, driving ratios, exported templates, eye retargeting) uses these functions, so all of them
are on the official scale, like an imported official template.
"""

from __future__ import annotations

import numpy as np

from pipeline.face import iris, meshidx

EPS = 1e-6  # as in calculate_distance_ratio

# official = max(0, EYE_UP * upper + EYE_LOW * lower + EYE_NOSE * drop + EYE_B), fitted as
# described above. On a clip left out of the fit its worst eye reads 0.038 off where the lid
# heights alone read 0.059 (d8, ~0.05 too open) and the single mid-lid ratio 0.062
# (``pipeline.liveportrait.eyeloo``). The constant part (EYE_B + EYE_NOSE * drop, about -0.18 at
# a typical drop of 0.47) is negative because a shut eye's lower lid still sits ~0.08 below the
# corner line in the iris model's outline, where the 203-point model reads the eye shut.
EYE_UP, EYE_LOW, EYE_NOSE, EYE_B = 1.3425, 1.8775, -0.5988, 0.0973
# the nose drop is clamped to the range the calibration frames span (0.402-0.567): the fit says
# nothing about faces tipped further, and must not extrapolate there
NOSE_DROP_RANGE = (0.40, 0.57)
OUTER_CORNERS = (33, 263)  # FaceMesh's outer eye corners, image-left eye first
# lips: a closed mouth reads 0.03-0.05 raw (FaceMesh keeps the inner lips apart), the official
# model 0.00-0.01; mapped, d7's closed-mouth frames read 0.025 (median), below the official
# lip_normalize_threshold 0.03.
LIP_A, LIP_B = 1.1342, -0.0270


def _ratio(pts: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    return float(np.linalg.norm(pts[a] - pts[b]) / (np.linalg.norm(pts[c] - pts[d]) + EPS))


def raw_eye_ratio(lids: np.ndarray) -> np.ndarray:
    """(2,) float64: mid-lid opening over corner-to-corner width of each refined eyelid outline
    (``FaceLandmarker.eyelids``: (2, 16, 2), image-left eye first): the blink signal of the
    quality report, and the eye maps' former input (``pipeline.liveportrait.eyeloo``)."""
    pts = np.asarray(lids, dtype=np.float64)
    return np.array([_ratio(p, iris.UPPER_MID, iris.LOWER_MID, iris.OUTER, iris.INNER)
                     for p in pts])


def eye_axes(lids: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Eye ``eye``'s own frame (``lids``: (2, 16, 2)): its outer corner, the unit vector "up"
    (perpendicular to the corner line, towards the brow on both eyes) and the corner-to-corner
    width; ``(p - corner) @ up / width`` is a point's height above the corner line in widths."""
    p = np.asarray(lids, dtype=np.float64)[eye]
    along = p[iris.INNER] - p[iris.OUTER]
    width = float(np.linalg.norm(along)) + EPS
    # "up" is the same side of the outer -> inner line on both eyes only after a mirror:
    # the image-right eye's outline runs the other way (outer corner on the image right)
    up = np.array([along[1], -along[0]]) / width * (1.0 if eye == 0 else -1.0)
    return p[iris.OUTER], up, width


def lid_heights(lids: np.ndarray) -> np.ndarray:
    """(2, 2) float64: per eye (image-left first), the upper lid's highest point above the line
    through the eye's corners and the lower lid's lowest point below it, each over the
    corner-to-corner width (``FaceLandmarker.eyelids``: (2, 16, 2)). Signed: an upper lid that
    drops below the corner line reads negative. Unchanged by moving, turning or scaling the
    face in the image."""
    pts = np.asarray(lids, dtype=np.float64)
    out = np.empty((2, 2))
    for eye, p in enumerate(pts):
        corner, up, width = eye_axes(pts, eye)
        height = (p - corner) @ up / width
        out[eye] = height[iris.UPPER_LID].max(), -height[iris.LOWER_LID].min()
    return out


def nose_drop(lmk468: np.ndarray) -> float:
    """How far FaceMesh's nose tip sits below the line through the outer eye corners (33, 263),
    over their distance, clamped to ``NOSE_DROP_RANGE``. Grows as the head tips forward (and is
    larger for a longer nose); unchanged by moving, turning or scaling the face in the image."""
    pts = np.asarray(lmk468, dtype=np.float64)
    a, b = pts[OUTER_CORNERS[0]], pts[OUTER_CORNERS[1]]
    along = b - a
    dist = float(np.linalg.norm(along)) + EPS
    down = np.array([-along[1], along[0]]) / dist  # image y points down
    drop = float((pts[meshidx.NOSE_TIP] - a) @ down) / dist
    return float(np.clip(drop, *NOSE_DROP_RANGE))


def raw_lip_ratio(lmk468: np.ndarray) -> np.ndarray:
    """(1,) float64: FaceMesh inner-lip opening over mouth width, before the mapping."""
    pts = np.asarray(lmk468, dtype=np.float64)
    return np.array([_ratio(pts, meshidx.LIP_INNER_TOP, meshidx.LIP_INNER_BOTTOM,
                            meshidx.MOUTH_L, meshidx.MOUTH_R)])


def eye_features(lids: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
    """(2, 3) float64: per eye (image-left first) what the eye map weighs: the lid heights
    (``lid_heights``) and the face's nose drop (``nose_drop``, the same for both eyes)."""
    return np.concatenate([lid_heights(lids), np.full((2, 1), nose_drop(lmk468))], 1)


def eye_ratio(lids: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
    """(2,) float32: the image-left and image-right eye's opening on the official scale, from
    the refined eyelids (``FaceLandmarker.eyelids``) and the face's 468 FaceMesh points."""
    mapped = eye_features(lids, lmk468) @ np.array([EYE_UP, EYE_LOW, EYE_NOSE]) + EYE_B
    return np.maximum(mapped, 0.0).astype(np.float32)


def lip_ratio(lmk468: np.ndarray) -> np.ndarray:
    """(1,) float32: the inner-lip opening on the official scale."""
    return np.maximum(LIP_A * raw_lip_ratio(lmk468) + LIP_B, 0.0).astype(np.float32)


def eye_ratio_mesh(lmk468: np.ndarray) -> np.ndarray:
    """(2,) float32: the old scheme (FaceMesh lids 159/145 over corners 33/133, 386/374 over
    263/362, unmapped); kept only so the calibration harness can show the before state."""
    pts = np.asarray(lmk468, dtype=np.float64)
    return np.array([_ratio(pts, 159, 145, 33, 133), _ratio(pts, 386, 374, 263, 362)],
                    dtype=np.float32)
