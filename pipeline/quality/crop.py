"""SyncNet's face crops, as the official ``run_pipeline.py crop_video`` cuts them, but placed by our
tracked landmarks instead of S3FD boxes.

Official (joonson/syncnet_python ``crop_video``, crop_scale 0.4): per frame the S3FD box gives a
half-size ``s = max(w, h) / 2`` and a centre (x, y); the three tracks are median-filtered over
13 frames (``scipy.signal.medfilt``, zero padding); the frame is padded with grey 110 by
``int(s * 1.8)`` on every side; the crop is rows ``y - s .. y + 1.8 s`` and columns
``x - 1.4 s .. x + 1.4 s`` (so the face box's lower part, mouth and chin, sits in the middle),
resized to 224x224 (``cv2.resize``, bilinear). SyncNet sees the whole crop: there is no separate
mouth cut-out.

The one difference, on purpose: the box comes from our 468 FaceMesh landmarks, not from S3FD:
facedrop's S3FD stand-in ``pipeline.face.geometry.wav2lip_box`` without padding (x from the jaw
contour, temple to temple; y from the top of the brows to the chin), the box Wav2Lip's own
S3FD crops are matched to elsewhere in facedrop. Not measured against S3FD on the same video
here (no S3FD weights in this environment); S3FD boxes also jitter from frame to frame, which
the official 13-frame median filter damps and tracked landmarks mostly lack. The official
pipeline also writes the crops to an XVID .avi and reads them back as JPEGs; we use the decoded
frames directly (no extra compression).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.face.geometry import wav2lip_box
from pipeline.media.lazy_frames import LazyFrames
from pipeline.quality.syncscore import medfilt

CROP_SIZE = 224
CROP_SCALE = 0.40
SMOOTH_KERNEL = 13
PAD_VALUE = 110
NO_PADS = (0.0, 0.0, 0.0, 0.0)  # the S3FD-like box itself (Wav2Lip pads 10 px below the chin)


def crop_tracks(landmarks: np.ndarray) -> np.ndarray:
    """(T, 3) smoothed (s, x, y) per frame from (T, 468, 2) landmarks (image pixels): half the
    longer side and the centre of the S3FD-like box.

    A clip shorter than the 13-frame filter gets the median box of all its frames.
    """
    boxes = np.array([wav2lip_box(lmk, pads=NO_PADS)
                      for lmk in np.asarray(landmarks, dtype=np.float64)[..., :2]])
    lo, hi = boxes[:, :2], boxes[:, 2:]
    size = np.max(hi - lo, axis=1) / 2  # the official max(w, h) / 2
    centre = (lo + hi) / 2
    raw = np.stack([size, centre[:, 0], centre[:, 1]], axis=1)
    if len(raw) < SMOOTH_KERNEL:  # the zero padding would dominate (the official min track is
        return np.repeat(np.median(raw, axis=0, keepdims=True), len(raw), axis=0)  # 100 frames)
    return np.stack([medfilt(raw[:, k], SMOOTH_KERNEL) for k in range(3)], axis=1)


def crop_face(frame_bgr: np.ndarray, s: float, x: float, y: float) -> np.ndarray:
    """One 224x224 crop, exactly the official slicing of the grey-padded frame."""
    cs = CROP_SCALE
    pad = int(s * (1 + 2 * cs))
    my, mx = y + pad, x + pad  # centre in padded coordinates
    r0, r1 = int(my - s), int(my + s * (1 + 2 * cs))
    c0, c1 = int(mx - s * (1 + cs)), int(mx + s * (1 + cs))
    h, w = frame_bgr.shape[:2]
    # numpy slicing of the padded frame clips at its bounds
    r0, r1 = max(r0, 0), min(r1, h + 2 * pad)
    c0, c1 = max(c0, 0), min(c1, w + 2 * pad)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty face crop (s={s:.1f}, centre {x:.1f},{y:.1f})")
    out = np.full((r1 - r0, c1 - c0, 3), PAD_VALUE, dtype=np.uint8)
    # the part of the padded frame that is the image: rows pad .. pad + h
    ir0, ir1 = max(r0, pad), min(r1, pad + h)
    ic0, ic1 = max(c0, pad), min(c1, pad + w)
    if ir1 > ir0 and ic1 > ic0:
        out[ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0] = frame_bgr[ir0 - pad:ir1 - pad,
                                                               ic0 - pad:ic1 - pad]
    return cv2.resize(out, (CROP_SIZE, CROP_SIZE))


class LazyCrops(LazyFrames):
    """The crops of ``frames_rgb``, each made when first read (scoring a subsample of windows
    reads only their frames)."""

    def __init__(self, frames_rgb: Sequence[np.ndarray], landmarks: np.ndarray) -> None:
        self.frames = frames_rgb
        self.tracks = crop_tracks(landmarks)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return min(len(self.frames), len(self.tracks))

    def _frame(self, index: int) -> np.ndarray:
        if index not in self._cache:
            s, x, y = self.tracks[index]
            rgb = self.frames[index]
            self._cache[index] = crop_face(np.ascontiguousarray(rgb[..., ::-1]), s, x, y)
        return self._cache[index]


