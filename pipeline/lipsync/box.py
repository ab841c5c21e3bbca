"""The Wav2Lip face box on the LivePortrait crop: tight, padded like the official inference, and
smoothed over time without lag.

Wav2Lip was trained on S3FD detector boxes (brows to chin, non-square), squashed to 96x96. The
box comes from the FaceMesh landmarks tracked on each animated crop (``pipeline.face``), so no
detector ever runs on the frames.
"""

from __future__ import annotations

import numpy as np

from pipeline.face.geometry import wav2lip_box
from pipeline.face.smooth import smooth_sequence

SMOOTH_SIGMA = 1.0  # frames: a centred Gaussian, about as wide as the official 5-frame window
MAX_SHIFT = 0.02  # smoothing may move a box edge by at most this fraction of the box height


def padded_box(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """The tight box (x1, y1, x2, y2) float64 with the official 10 px bottom pad
    (``inference.py --pads 0 10 0 0``), clipped to the crop as the official code clips.

    The LivePortrait crop shows the face at about the size a 720p-1080p frame does, so the
    official pixel count keeps the chin inside the box as it does there.
    """
    return np.array(wav2lip_box(landmarks, image_size=(width, height)), dtype=np.float64)


def smooth_boxes(boxes: np.ndarray, sigma: float = SMOOTH_SIGMA,
                 max_shift: float = MAX_SHIFT) -> np.ndarray:
    """Zero-lag temporal smoothing of (N, 4) boxes in frame order.

    The official ``get_smoothened_boxes`` averages box i with the NEXT four (a forward-looking
    window): during head motion the box runs ahead of the face and the pasted mouth lands beside
    the real one ("two mouths", README ``--nosmooth``). Here a centred Gaussian
    (``pipeline.face.smooth.smooth_sequence``) removes landmark jitter with no lag, and the result
    is clamped to ``max_shift`` x box height from the measured box, so fast motion is never
    smeared away and the box never leaves the face.
    """
    raw = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    smoothed = smooth_sequence(raw, sigma).astype(np.float64)
    limit = max_shift * (raw[:, 3] - raw[:, 1])[:, None]
    return np.clip(smoothed, raw - limit, raw + limit)


def integer_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Round a float box to pixel edges inside the crop, at least 2 px each way."""
    x1, y1 = (max(0, int(round(v))) for v in box[:2])
    x2 = min(width, max(x1 + 2, int(round(box[2]))))
    y2 = min(height, max(y1 + 2, int(round(box[3]))))
    return x1, y1, x2, y2
