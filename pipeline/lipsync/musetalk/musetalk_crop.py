"""MuseTalk 1.5's face crop on the animated 512 crop, from our tracked FaceMesh landmarks.

The official code (``musetalk/utils/preprocessing.py get_landmark_and_bbox``, v1.5 defaults of
``scripts/inference.py`` / ``realtime_inference.py``) finds the face with S3FD and its 68 face
landmarks with DWPose, then boxes the face as

- x: the landmarks' min .. max x; bottom: their max y (the chin);
- top: as far above landmark 29 (on the nose bridge) as the chin is below it
  (``upper_bond = y29 - (y_max - y29)``, not above the frame; ``bbox_shift`` is 0 in v1.5);
- v1.5 ``extra_margin``: the bottom moved 10 px down (not past the frame);

then crops ``frame[y1:y2, x1:x2]`` and resizes it to 256 x 256 with Lanczos. The VAE latents of
that face (lower half blanked, and whole) are the UNet's reference; the generated 256 face is
resized back to the box (bilinear) and blended with the BiSeNet-shaped mask
(``pipeline.musetalk.parsing``) over a square 1.5x the box (``get_crop_box``).

Differences, all documented here:
- No second detector: the 68 points are FaceMesh stand-ins (the usual FaceMesh -> iBUG-68 map),
  tracked on each crop as the Wav2Lip path does. Where the official code falls back to the S3FD
  box for a box with a negative left edge, here the box is clipped to the crop.
- Boxes are smoothed over time without lag (``box.smooth_boxes``, as for Wav2Lip); the official
  code boxes each frame alone, so its box jitters with the landmarks.
- The margins are in 512-crop pixels, where the face is about as large as in the 720p-1080p
  videos the official pixel counts were chosen for.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.lipsync import box as boxes
from pipeline.musetalk.parsing import EXTRA_MARGIN, crop_box, crop_region

FACE_SIZE = 256
# iBUG-68 order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67.
IBUG68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
])
HALF_FACE = 29  # the official ``half_face_coord = face_land_mark[29]``

Box = tuple[int, int, int, int]


def face_box(landmarks: np.ndarray, height: int) -> np.ndarray:
    """The official v1.5 box (x1, y1, x2, y2) float64 for (468, 2) crop-pixel landmarks (the
    v1.5 ``extra_margin`` included, in float: the box is smoothed before it is rounded)."""
    pts = np.asarray(landmarks, dtype=np.float64)[IBUG68]
    bottom = float(pts[:, 1].max())
    half = float(pts[HALF_FACE, 1])
    top = max(0.0, half - (bottom - half))
    return np.array([pts[:, 0].min(), top, pts[:, 0].max(),
                     min(bottom + EXTRA_MARGIN, float(height))])


def face_boxes(landmarks: list[np.ndarray], width: int, height: int) -> list[Box]:
    """Integer boxes for consecutive crops' landmarks, smoothed over time without lag."""
    if not landmarks:
        return []
    raw = np.stack([face_box(lmk, height) for lmk in landmarks])
    return [boxes.integer_box(b, width, height) for b in boxes.smooth_boxes(raw)]


def face_256(crop: np.ndarray, box: Box) -> np.ndarray:
    """The UNet's reference face: the box resized to 256 x 256 with Lanczos (RGB uint8)."""
    x1, y1, x2, y2 = box
    face = cv2.resize(crop[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)
    return np.ascontiguousarray(face)


def parsing_region(crop: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """The square the official code parses and blends over (``get_crop_box``, 1.5x the box),
    cut from the crop with black outside it (as PIL's ``crop`` pads), and that square."""
    square = crop_box(box)
    return crop_region(crop, square), square


def box_part(region_mask: np.ndarray, square: Box, box: Box) -> np.ndarray:
    """The (h, w) part over ``box`` of a mask over the parsing square (same dtype). Outside the
    box the official blend pastes the crop onto itself, so the box's part is the whole mask."""
    x1, y1, x2, y2 = box
    sx, sy = square[:2]
    out = np.zeros((y2 - y1, x2 - x1), dtype=region_mask.dtype)
    # a box of a few pixels can poke out of its square (integer halving): 0 there
    ys = slice(max(y1, sy), min(y2, sy + region_mask.shape[0]))
    xs = slice(max(x1, sx), min(x2, sx + region_mask.shape[1]))
    out[ys.start - y1:ys.stop - y1, xs.start - x1:xs.stop - x1] = \
        region_mask[ys.start - sy:ys.stop - sy, xs.start - sx:xs.stop - sx]
    return out


def resize_generated(face: np.ndarray, box: Box) -> np.ndarray:
    """A generated (256, 256, 3) uint8 RGB face resized to the box as the official
    ``cv2.resize(res_frame.astype(np.uint8), (x2 - x1, y2 - y1))`` (bilinear), float32."""
    x1, y1, x2, y2 = box
    return cv2.resize(face, (x2 - x1, y2 - y1)).astype(np.float32)
