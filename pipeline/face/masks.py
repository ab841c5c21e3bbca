"""Feathered blend masks, float32 in [0, 1].

- ``square_feather_mask``: LivePortrait's ``src/utils/resources/mask_template.png`` rebuilt: 1
  inside, a linear ramp to 0 over the outer 16 px of the 512 crop, rounded corners (matches the
  PNG to 1/255 apart from its 8-bit truncation).
- ``face_mask``: the FaceMesh face oval, eroded then Gaussian-blurred so the seam lies inside
  the face and has no hard edge (the role facexlib's parsing mask plays for GFPGAN).
- ``hull_mask``: any point set's convex hull, eroded and blurred, computed on its bounding box.
Sizes scale with the face so the feather looks the same at any resolution. The lip-sync blend's
lower-face mask is ``pipeline.lipsync.wav2lip.blend.lower_face_mask``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.face import meshidx

LIVEPORTRAIT_FEATHER_PX = 16  # ramp width of mask_template.png at 512


def square_feather_mask(size: int | tuple[int, int], feather: float = LIVEPORTRAIT_FEATHER_PX
                        ) -> np.ndarray:
    """(h, w) mask: 1 inside, falling linearly to 0 over ``feather`` px at each border.

    The value is ``1 - d/feather`` with ``d`` the Euclidean distance to the inner rectangle that
    lies ``feather`` px inside the edges, so corners are rounded, as in mask_template.png.
    """
    w, h = (size, size) if isinstance(size, int) else size
    # distance to the edge as the official template has it: x from the left, w - x from the
    # right (so the last column is 1/16, not 0: the PNG is one pixel asymmetric)
    ex = np.minimum(np.arange(w), w - np.arange(w)).astype(np.float32)
    ey = np.minimum(np.arange(h), h - np.arange(h)).astype(np.float32)
    dx = np.maximum(feather - ex, 0.0)[None, :]
    dy = np.maximum(feather - ey, 0.0)[:, None]
    d = np.sqrt(dx * dx + dy * dy)
    return np.clip(1.0 - d / max(feather, 1e-6), 0.0, 1.0).astype(np.float32)


def _face_size(lmk: np.ndarray) -> float:
    span = lmk[meshidx.FACE_OVAL].max(0) - lmk[meshidx.FACE_OVAL].min(0)
    return float(max(span))


def hull_mask(points: np.ndarray, shape: tuple[int, int], erode_px: float,
              blur_sigma: float) -> np.ndarray:
    """Filled convex hull of ``points`` in an (h, w) mask, eroded by ``erode_px``, blurred.

    Only the hull's bounding box plus the blur's reach (4 sigma, OpenCV's float kernel radius) is
    computed; the rest is zero, as a full-frame blur would leave it.
    """
    h, w = shape
    pts = np.asarray(points, dtype=np.float64)
    reach = int(math.ceil(4 * blur_sigma)) + 2
    x0, y0 = np.floor(pts.min(0)).astype(int) - reach
    x1, y1 = np.ceil(pts.max(0)).astype(int) + reach + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    full = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return full
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    hull = cv2.convexHull(np.round((pts - [x0, y0]) * 16).astype(np.int32))  # 4 bits subpixel
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    r = int(round(erode_px))
    if r > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        mask = cv2.erode(mask, kernel)
    out: np.ndarray = mask.astype(np.float32) / 255.0
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=blur_sigma, sigmaY=blur_sigma,
                               borderType=cv2.BORDER_CONSTANT)
        # cut the Gaussian's far tail so nothing outside the hull changes at all (with the
        # default erosion of 3 sigma the cut is below 1/255, invisible)
        out[out < 1.0 / 255.0] = 0.0
    full[y0:y1, x0:x1] = out
    return full


def face_mask(lmk468: np.ndarray, shape: tuple[int, int], erode: float = 0.075,
              blur: float = 0.025) -> np.ndarray:
    """Feathered face-oval mask; ``erode``/``blur`` (sigma) are fractions of the face size."""
    pts = np.asarray(lmk468, dtype=np.float64)
    size = _face_size(pts)
    return hull_mask(pts[meshidx.FACE_OVAL], shape, erode * size, blur * size)

