"""Temporal smoothing of landmarks, so the per-frame GFPGAN alignment and mask never jump.

Per-frame FaceMesh points jitter by about a pixel; GFPGAN restores each frame independently, so an
alignment that follows that jitter makes the restored lips and eyes shimmer (DESIGN.md, "Temporal
stability"). An exponential moving average over frames, in temporal order, carried across
chunk boundaries, removes most of it. The lag it adds is harmless for the pixels: every frame is
pasted back through the exact inverse of the alignment it was restored with.
"""

from __future__ import annotations

import numpy as np


class LandmarkSmoother:
    """Causal EMA of (N, 2) landmark sets: ``s_t = s_{t-1} + alpha * (x_t - s_{t-1})``.

    ``alpha`` 1 disables smoothing; 0.5 halves the frame-to-frame jitter's amplitude (variance to a
    third) with about one frame of lag.
    """

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the history (a new job or a new shot)."""
        self._state = None

    def update(self, landmarks: np.ndarray) -> np.ndarray:
        """Feed the next frame's landmarks; returns the smoothed set (float64 copy)."""
        pts = np.asarray(landmarks, dtype=np.float64)
        if self._state is None or self._state.shape != pts.shape:
            self._state = pts.copy()
        else:
            self._state = self._state + self.alpha * (pts - self._state)
        return self._state.copy()
