"""Retiming a driving clip to the audio: which driving frame each output frame shows.

Output frame ``i`` is shown at time ``i / fps_out``; it takes the driving frame on screen at that
time, ``floor(i * fps_drv / fps_out)``, with the clip extended by ping-pong (0,1,..,n-1,n-2,..,1,
0,1,..: no jump at the seam) or plain repetition. Both rates are used exactly (29.97 stays
30000/1001; the official pipeline truncates it to 29 and drifts out of sync, issue #486).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.settings import LoopMode

# Float noise guard: frame i at the output rate may land at 2.9999999 driving frames, not 3.
_EPS = 1e-6


def loop_index(j: np.ndarray, n: int, mode: LoopMode) -> np.ndarray:
    """Map unbounded driving positions ``j`` (>= 0) into ``[0, n)`` by ``mode``."""
    if n < 1:
        raise ValueError("a driving clip needs at least one frame")
    if n == 1:
        return np.zeros_like(j)
    if mode is LoopMode.REPEAT:
        return j % n
    period = 2 * n - 2  # 0..n-1 then n-2..1
    k = j % period
    return np.where(k < n, k, period - k)


@dataclass(frozen=True, slots=True)
class RetimePlan:
    """Output frame -> driving frame, and the distinct driving frames that must be rendered.

    ``driving_index[i]`` is the driving frame of output frame ``i``; ``distinct`` the sorted
    driving frames used (each rendered once); ``order[i]`` the position of output frame ``i``'s
    frame in ``distinct`` (``distinct[order] == driving_index``).
    """

    fps: float
    driving_index: np.ndarray
    distinct: np.ndarray
    order: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.driving_index.shape[0])


def retime(
    n_out: int, fps_out: float, n_driving: int, fps_driving: float, mode: LoopMode
) -> RetimePlan:
    """Plan ``n_out`` output frames at ``fps_out`` from ``n_driving`` frames at ``fps_driving``."""
    if fps_driving <= 0:
        raise ValueError(f"driving fps must be positive, got {fps_driving}")
    i = np.arange(n_out, dtype=np.float64)
    j = np.floor(i * (fps_driving / fps_out) + _EPS).astype(np.int64)
    index = loop_index(j, n_driving, mode)
    distinct, order = np.unique(index, return_inverse=True)
    return RetimePlan(fps=fps_out, driving_index=index, distinct=distinct, order=order.ravel())
