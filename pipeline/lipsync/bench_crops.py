"""The lip-sync benchmarks' input: LivePortrait-style crops of a photo, moved slightly from
frame to frame so landmark tracking does real work (every engine's bench and ``bench
--compare`` use the same)."""

from __future__ import annotations

import numpy as np

from pipeline.face.geometry import Affine, liveportrait_crop, warp
from pipeline.face.landmarker import Landmarker


def animated_crops(photo: np.ndarray, landmarker: Landmarker, n: int
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` 512 crops of the photo with a small drift, and the first crop's landmarks."""
    lmk = landmarker.landmarks(photo, landmarker.detect(photo))
    to_crop = liveportrait_crop(lmk)
    crops = [warp(photo, Affine.translation(0.5 * k, 0.25 * k).compose(to_crop), 512)
             for k in range(n)]
    return crops, to_crop.apply(lmk).astype(np.float32)
