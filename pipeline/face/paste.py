"""Paste a (modified) crop back into the full frame through a feathered mask.

As the official LivePortrait ``paste_back``: warp the crop and its mask with the inverse crop
transform (INTER_LINEAR), then ``mask * crop + (1 - mask) * frame``. Only the bounding rectangle
of the warped crop is touched, and the warped mask is computed once per transform
(``PasteBack``), since a job pastes many frames through the same crop.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.face.affine import Affine, warp
from pipeline.face.masks import square_feather_mask


class PasteBack:
    """Precomputed paste of ``crop_size`` crops into ``full_size`` frames.

    ``affine`` maps full-frame pixels to crop pixels (the crop's transform); ``mask`` is an
    (h, w) float mask in crop coordinates (default: LivePortrait's square feather).
    """

    def __init__(self, affine: Affine, crop_size: tuple[int, int], full_size: tuple[int, int],
                 mask: np.ndarray | None = None) -> None:
        cw, ch = crop_size
        fw, fh = full_size
        if mask is None:
            mask = square_feather_mask((cw, ch))
        if mask.shape[:2] != (ch, cw):
            raise ValueError(f"mask {mask.shape[:2]} does not match the crop {(ch, cw)}")
        inv = affine.inverse()
        corners = inv.apply(np.array([[-0.5, -0.5], [cw - 0.5, -0.5], [cw - 0.5, ch - 0.5],
                                      [-0.5, ch - 0.5]]))
        lo, hi = corners.min(0), corners.max(0)
        self.x0, self.y0 = max(0, math.floor(lo[0])), max(0, math.floor(lo[1]))
        self.x1, self.y1 = min(fw, math.ceil(hi[0]) + 1), min(fh, math.ceil(hi[1]) + 1)
        self.crop_size, self.full_size = (cw, ch), (fw, fh)
        self.empty = self.x1 <= self.x0 or self.y1 <= self.y0
        # crop pixels -> pixels of the touched rectangle
        self.local = Affine.translation(-self.x0, -self.y0).compose(inv)
        self.alpha: np.ndarray | None = None  # (h, w) float32 weights of the crop in the rect
        self.beta: np.ndarray | None = None  # 1 - alpha: weights of the frame
        if not self.empty:
            a = warp(mask.astype(np.float32), self.local, self.rect_size)
            self.alpha = np.ascontiguousarray(np.clip(a, 0.0, 1.0))
            self.beta = 1.0 - self.alpha

    @property
    def rect_size(self) -> tuple[int, int]:
        return self.x1 - self.x0, self.y1 - self.y0

    def paste(self, full: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """A new uint8 frame: ``full`` with ``crop`` blended in."""
        fw, fh = self.full_size
        if full.shape[:2] != (fh, fw) or crop.shape[:2] != self.crop_size[::-1]:
            raise ValueError(f"frame {full.shape} / crop {crop.shape} do not match this paste")
        out = full.copy()
        if self.alpha is None or self.beta is None:  # empty: the crop lands outside the frame
            return out
        # replicate: where the feather is partly on past the crop edge, use edge pixels, not black
        warped = warp(crop, self.local, self.rect_size, border=cv2.BORDER_REPLICATE)
        region = np.ascontiguousarray(full[self.y0:self.y1, self.x0:self.x1])
        # (alpha*crop + (1-alpha)*frame) rounded to uint8 in one pass; alpha == 0 returns the
        # frame's pixel exactly. About 5x faster than the same in numpy float32.
        out[self.y0:self.y1, self.x0:self.x1] = cv2.blendLinear(warped, region, self.alpha,
                                                                self.beta)
        return out
