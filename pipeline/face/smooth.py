"""Temporal smoothing of landmark (or box) sequences without lag.

Per-frame landmarks jitter by a pixel or so; aligning each frame on raw landmarks makes the
pasted mouth shimmer. A job knows all its frames in advance, so a centred (zero-phase) Gaussian
over time removes the jitter without the delay a causal filter adds. (Wav2Lip's own
``get_smoothened_boxes`` averages a forward window of 5, which shifts boxes ahead in time.)
"""

from __future__ import annotations

import math

import numpy as np


def smooth_sequence(seq: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Centred Gaussian smoothing along axis 0 (time) of ``seq`` (T, ...); float32 out.

    ``sigma`` is in frames; 0 returns a copy. The ends are padded by repeating the first/last
    frame, so a still sequence stays exactly still and nothing drifts at the ends.
    """
    x = np.asarray(seq, dtype=np.float64)
    if sigma <= 0 or x.shape[0] < 2:
        return x.astype(np.float32)
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(r, r)] + [(0, 0)] * (x.ndim - 1)
    xp = np.pad(x, pad, mode="edge")
    out = np.zeros_like(x)
    t = x.shape[0]
    for i, w in enumerate(k):
        out += w * xp[i:i + t]
    return out.astype(np.float32)
