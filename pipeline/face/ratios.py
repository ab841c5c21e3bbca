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
  its own weight: ``official = max(0, EYE_UP * upper + EYE_LOW * lower + EYE_B)``;
- lips: FaceMesh inner-lip midpoints 13/14 over mouth corners 61/291, mapped linearly,
  ``official = max(0, A * ours + B)``.
The coefficients are fitted by least squares on the official driving templates d1, d2, d5, d7 of
KwaiVGI/LivePortrait (per-frame ``c_d_eyes_lst`` / ``c_d_lip_lst``, 358 frames: 16, 16, 148,
178; each clip weighted equally, both eyes pooled) against our points measured on the matching
clips. The measured points are the fixtures ``tests/fixtures/calibration/d*.npz``;
``tests/test_calibration.py`` re-fits them and checks these constants. Every consumer (source
ratios, driving ratios, exported templates, eye retargeting) uses these functions, so all of them
are on the official scale, like an imported official template.
"""

from __future__ import annotations

import numpy as np

from pipeline.face import iris, meshidx

EPS = 1e-6  # as in calculate_distance_ratio

# official = max(0, EYE_UP * upper + EYE_LOW * lower + EYE_B), fitted as described above. On a
# clip left out of the fit its worst eye reads 0.038 off where the single mid-lid ratio's map
# (1.3511 * raw - 0.1313) read 0.043 (``pipeline.liveportrait.eyeloo``). The offset is negative
# because a shut eye's lower lid still sits ~0.08 below the corner line in the iris model's
# outline (1.76 * 0.08 ~ 0.14), where the 203-point model reads the eye shut.
EYE_UP, EYE_LOW, EYE_B = 1.2693, 1.7599, -0.1491
# lips: a closed mouth reads 0.03-0.05 raw (FaceMesh keeps the inner lips apart), the official
# model 0.00-0.01; mapped, d7's closed-mouth frames read 0.022 (median), below the official
# lip_normalize_threshold 0.03.
LIP_A, LIP_B = 1.1335, -0.0304


def _ratio(pts: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    return float(np.linalg.norm(pts[a] - pts[b]) / (np.linalg.norm(pts[c] - pts[d]) + EPS))


def raw_eye_ratio(lids: np.ndarray) -> np.ndarray:
    """(2,) float64: mid-lid opening over corner-to-corner width of each refined eyelid outline
    (``FaceLandmarker.eyelids``: (2, 16, 2), image-left eye first): the blink signal of the
    quality report, and the eye maps' former input (``pipeline.liveportrait.eyeloo``)."""
    pts = np.asarray(lids, dtype=np.float64)
    return np.array([_ratio(p, iris.UPPER_MID, iris.LOWER_MID, iris.OUTER, iris.INNER)
                     for p in pts])


def lid_heights(lids: np.ndarray) -> np.ndarray:
    """(2, 2) float64: per eye (image-left first), the upper lid's highest point above the line
    through the eye's corners and the lower lid's lowest point below it, each over the
    corner-to-corner width (``FaceLandmarker.eyelids``: (2, 16, 2)). Signed: an upper lid that
    drops below the corner line reads negative. Unchanged by moving, turning or scaling the
    face in the image."""
    pts = np.asarray(lids, dtype=np.float64)
    out = np.empty((2, 2))
    for eye, p in enumerate(pts):
        along = p[iris.INNER] - p[iris.OUTER]
        width = float(np.linalg.norm(along)) + EPS
        # "up" is the same side of the outer -> inner line on both eyes only after a mirror:
        # the image-right eye's outline runs the other way (outer corner on the image right)
        up = np.array([along[1], -along[0]]) / width * (1.0 if eye == 0 else -1.0)
        height = (p - p[iris.OUTER]) @ up / width
        out[eye] = height[iris.UPPER_LID].max(), -height[iris.LOWER_LID].min()
    return out


def raw_lip_ratio(lmk468: np.ndarray) -> np.ndarray:
    """(1,) float64: FaceMesh inner-lip opening over mouth width, before the mapping."""
    pts = np.asarray(lmk468, dtype=np.float64)
    return np.array([_ratio(pts, meshidx.LIP_INNER_TOP, meshidx.LIP_INNER_BOTTOM,
                            meshidx.MOUTH_L, meshidx.MOUTH_R)])


def eye_ratio(lids: np.ndarray) -> np.ndarray:
    """(2,) float32: the image-left and image-right eye's opening on the official scale."""
    heights = lid_heights(lids)
    mapped = EYE_UP * heights[:, 0] + EYE_LOW * heights[:, 1] + EYE_B
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
