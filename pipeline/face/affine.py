"""A 2-D affine transform value and the image warp that applies it.

Every crop in facedrop is an ``Affine`` from image pixels to crop pixels; its ``inverse()`` pastes
back. Pixel coordinates follow OpenCV: the centre of pixel (i, j) is at (x=j, y=i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Affine:
    """A 2x3 float64 matrix ``M``: ``p' = M[:, :2] @ p + M[:, 2]``."""

    matrix: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64).reshape(-1, 3)[:2].copy()
        if m.shape != (2, 3) or not np.all(np.isfinite(m)):
            raise ValueError(f"an affine needs a finite 2x3 (or 3x3) matrix, got {m!r}")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> Affine:
        return cls(np.eye(2, 3))

    @classmethod
    def similarity(cls, scale: float, angle: float, src_centre: np.ndarray,
                   dst_centre: np.ndarray) -> Affine:
        """Map ``src_centre`` to ``dst_centre``, scaling by ``scale`` and rotating by ``-angle``.

        ``angle`` (radians) is the direction of the source frame's x axis in the image (y down);
        rotating by ``-angle`` makes that axis horizontal in the destination. This is the
        ``M_o2c`` form of LivePortrait's ``_estimate_similar_transform_from_pts``.
        """
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        cx, cy = float(src_centre[0]), float(src_centre[1])
        tx, ty = float(dst_centre[0]), float(dst_centre[1])
        return cls(np.array([[c, s, tx - (c * cx + s * cy)], [-s, c, ty - (-s * cx + c * cy)]]))

    @property
    def h(self) -> np.ndarray:
        """The 3x3 homogeneous form."""
        return np.vstack([self.matrix, [0.0, 0.0, 1.0]])

    @property
    def scale(self) -> float:
        """Mean linear scale factor (sqrt of the determinant)."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def inverse(self) -> Affine:
        return Affine(np.linalg.inv(self.h))

    def compose(self, other: Affine) -> Affine:
        """``self`` after ``other``: ``a.compose(b).apply(p) == a.apply(b.apply(p))``."""
        return Affine(self.h @ other.h)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points (..., 2); float64 out."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]

    def as_cv2(self) -> np.ndarray:
        """A float64 2x3 array for ``cv2.warpAffine``."""
        return np.array(self.matrix)

    @classmethod
    def translation(cls, dx: float, dy: float) -> Affine:
        return cls(np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))


def warp(image: np.ndarray, affine: Affine, size: int | tuple[int, int],
         interpolation: int = cv2.INTER_LINEAR, border: int = cv2.BORDER_CONSTANT,
         border_value: float | tuple[float, ...] = 0) -> np.ndarray:
    """Warp ``image`` with ``affine`` (source pixels -> output pixels) to ``size`` (w, h).

    BORDER_CONSTANT (black) is the default because the official LivePortrait crop uses it; pass
    BORDER_REPLICATE for inputs where a black edge would be seen as image content.
    """
    w, h = (size, size) if isinstance(size, int) else size
    return cv2.warpAffine(image, affine.as_cv2(), (int(w), int(h)), flags=interpolation,
                          borderMode=border, borderValue=border_value)
