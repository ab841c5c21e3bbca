"""Which frames a job's own scoring reads: a subsample cheap enough to run in every job.

Full SyncNet scoring (every window, as the official evaluation and ``facedrop score``) costs
about 1.9 CPU-s per second of video, twice what a repeat-avatar job itself takes. Its cost is
the video stream (one 5-frame window: ~30 ms on 2 cores) and the audio stream: every video
window's offset search compares it with the 31 audio windows 15 frames either side (~2.7 ms
each), so one isolated window costs ~110 ms, mostly audio. Consecutive windows share their
audio windows, so the job's scoring takes **clusters** of ``CLUSTER_WINDOWS`` consecutive
windows (33 audio windows for 3 video windows, ~150 ms), one cluster per
``SECONDS_PER_CLUSTER`` seconds of video at the centres of equal segments, at least one: the
whole ±15-frame offset search is kept for every sampled window, and the mean distance per
offset (LSE-C, LSE-D, offset) runs over the sampled windows instead of all of them.

The cheap measures are sampled too: flicker on ``FLICKER_PAIRS_PER_SECOND`` frame pairs a
second, the seam on ``SEAM_FRAMES_PER_SECOND`` frames a second; landmark jitter and the
tracked share use every frame (they need no pixels). ``SamplePlan.describe`` goes into
quality.json so a reader knows the figures come from a sample.

All indices are frames of the 25 fps timeline the scoring uses (SyncNet's rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.quality.pictures import poster_index, sheet_indices
from pipeline.quality.syncscore import FPS, VSHIFT, window_count

CLUSTER_WINDOWS = 3  # consecutive SyncNet windows per cluster (they share audio windows)
SECONDS_PER_CLUSTER = 10.0
FLICKER_PAIRS_PER_SECOND = 1
SEAM_FRAMES_PER_SECOND = 1


def spread(lo: int, hi: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``lo .. hi - 1`` (all of them if fewer)."""
    if hi - lo <= count:
        return list(range(lo, hi))
    return sorted({int(round(x)) for x in np.linspace(lo, hi - 1, count)})


def cluster_starts(n_windows: int, video_seconds: float) -> np.ndarray:
    """First frames of the SyncNet windows scored: clusters of consecutive windows centred in
    equal segments of the video, one per ``SECONDS_PER_CLUSTER`` s (at least one)."""
    if n_windows < 1:
        return np.zeros(0, np.int64)
    clusters = max(1, int(round(video_seconds / SECONDS_PER_CLUSTER)))
    clusters = min(clusters, max(1, n_windows // CLUSTER_WINDOWS))
    starts: set[int] = set()
    for j in range(clusters):
        centre = (j + 0.5) * n_windows / clusters
        first = int(round(centre - CLUSTER_WINDOWS / 2))
        first = min(max(0, first), max(0, n_windows - CLUSTER_WINDOWS))
        starts.update(range(first, min(n_windows, first + CLUSTER_WINDOWS)))
    return np.array(sorted(starts), np.int64)


@dataclass(frozen=True)
class SamplePlan:
    """The frames (25 fps indices) each part of a job's scoring reads."""

    n_frames: int
    n_windows: int  # SyncNet windows the full evaluation would score
    window_starts: np.ndarray  # the windows scored
    flicker_pairs: list[int]  # k: the pair (k-1, k)
    seam_frames: list[int]
    preview_frames: list[int]
    poster_frame: int

    def describe(self) -> dict[str, object]:
        """What quality.json says about the sample."""
        return {
            "mode": "in-job sample (facedrop score VIDEO scores every window)",
            "syncnet_windows": int(len(self.window_starts)),
            "syncnet_windows_full": self.n_windows,
            "syncnet_clusters_of": CLUSTER_WINDOWS,
            "syncnet_seconds_per_cluster": SECONDS_PER_CLUSTER,
            "offset_search_frames": VSHIFT,
            "flicker_pairs": len(self.flicker_pairs),
            "seam_frames": len(self.seam_frames),
            "jitter_and_tracking": "every frame",
        }


def plan_sample(n_frames: int, n_samples: int, landmarks: np.ndarray,
                tracked: Sequence[bool]) -> SamplePlan:
    """The sample for a video of ``n_frames`` frames at 25 fps with ``n_samples`` 16 kHz audio
    samples; ``landmarks``/``tracked`` (per 25 fps frame) pick the poster frame."""
    seconds = n_frames / FPS
    n_windows = window_count(n_frames, n_samples)
    return SamplePlan(
        n_frames=n_frames,
        n_windows=n_windows,
        window_starts=cluster_starts(n_windows, seconds),
        flicker_pairs=spread(1, n_frames, int(FLICKER_PAIRS_PER_SECOND * seconds) + 1),
        seam_frames=spread(0, n_frames, int(SEAM_FRAMES_PER_SECOND * seconds) + 1),
        preview_frames=sheet_indices(n_frames),
        poster_frame=poster_index(landmarks, tracked) if n_frames else 0,
    )
