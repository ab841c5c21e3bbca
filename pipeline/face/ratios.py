"""Eye and lip opening ratios (LivePortrait's c_eyes / c_lip) from FaceMesh points.

Official ``src/utils/retargeting_utils.py`` on the 203-point landmarks:
``calc_eye_close_ratio``: left = |p6 - p18| / |p0 - p12|, right = |p30 - p42| / |p24 - p36|
(eye opening: mid upper lid to mid lower lid, over eye width: corner to corner), and
``calc_lip_close_ratio``: |p90 - p102| / |p48 - p66| (inner lip opening at the centre over
mouth width, corner to corner), each with +1e-6 in the denominator.

FaceMesh counterparts (meshidx): eye (image left) lids 159/145, corners 33/133; eye (image right)
lids 386/374, corners 263/362; inner lip midpoints 13/14; mouth corners 61/291. The first eye is
the one on the image's left, the order the 203-point eyes come in. Source and driving ratios must
both come from this function so the retargeting MLPs see consistent values.
"""

from __future__ import annotations

import numpy as np

from pipeline.face import meshidx

EPS = 1e-6  # as in calculate_distance_ratio


def _ratio(lmk: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    return float(np.linalg.norm(lmk[a] - lmk[b]) / (np.linalg.norm(lmk[c] - lmk[d]) + EPS))


def eye_ratio(lmk468: np.ndarray) -> np.ndarray:
    """(2,) float32: opening/width of the image-left and image-right eye."""
    pts = np.asarray(lmk468, dtype=np.float64)
    left = _ratio(pts, 159, 145, 33, 133)
    right = _ratio(pts, 386, 374, 263, 362)
    return np.array([left, right], dtype=np.float32)


def lip_ratio(lmk468: np.ndarray) -> np.ndarray:
    """(1,) float32: inner-lip opening over mouth width."""
    pts = np.asarray(lmk468, dtype=np.float64)
    return np.array([_ratio(pts, meshidx.LIP_INNER_TOP, meshidx.LIP_INNER_BOTTOM,
                            meshidx.MOUTH_L, meshidx.MOUTH_R)], dtype=np.float32)
