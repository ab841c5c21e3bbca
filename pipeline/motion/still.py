"""``still`` motion: a face that holds still but lives, from a seed alone (no clip, no weights).

Per frame, in LivePortrait's keypoint space (rendered relative to frame 0 like any source):
- head: pitch/yaw/roll from smooth noise, a sum of a few slow sinusoids (0.03-0.25 Hz) with
  seeded frequencies and phases, a few degrees at most;
- breathing: scale and vertical translation follow one slow cycle (about 12-18 breaths a
  minute), a fraction of a percent, as a seated speaker's head rises and sinks;
- blinks: at irregular intervals (each blink, then 1.2 s, then a gamma-distributed wait: about
  3.8 s from one blink to the next on average, about 16 a minute, inside the 8-30 of people at
  rest and in conversation), each a fast close and a slower open (about 0.1 s down, 0.05 s
  shut, 0.18 s up), written as eye-opening ratios ``c_eyes`` for eye retargeting;
- expression: the source's own (the deltas are zero).
The same seed always gives the same motion; the renderer keys its cache by the motion's hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.liveportrait.template import NUM_KP, DrivingMotion
from pipeline.models.liveportrait.keypoints import get_rotation_matrix

# degrees: the largest excursion of each angle (the noise is scaled to stay inside it)
HEAD_DEGREES = {"pitch": 2.0, "yaw": 3.0, "roll": 1.5}
HEAD_HZ = (0.03, 0.25)  # slow: a head at rest drifts, it does not shake
PARTIALS = 4  # sinusoids per angle
BREATH_HZ = (0.2, 0.3)
BREATH_SCALE = 0.004  # relative scale change at the top of a breath
BREATH_RISE = 0.003  # vertical translation (keypoint units, about 0.1% of the crop)
BLINK_GAP_MIN_S = 1.2
BLINK_GAP_SHAPE, BLINK_GAP_SCALE = 2.0, 1.15  # gamma: mean 2.3 s on top of the minimum
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.10, 0.05, 0.18
BLINK_DEPTH = 0.95  # the lids nearly meet (a ratio of 0 reads as an eye forced shut)


@dataclass(frozen=True, slots=True)
class StillMotion:
    """The angles (degrees) and blink openness (1 open, 0 shut) behind a still motion."""

    pitch: np.ndarray
    yaw: np.ndarray
    roll: np.ndarray
    openness: np.ndarray
    motion: DrivingMotion


def smooth_noise(rng: np.random.Generator, t: np.ndarray, peak: float) -> np.ndarray:
    """A slow random curve over times ``t`` that never exceeds ``peak`` in magnitude."""
    freqs = rng.uniform(*HEAD_HZ, PARTIALS)
    phases = rng.uniform(0, 2 * np.pi, PARTIALS)
    weights = rng.uniform(0.5, 1.0, PARTIALS)
    curve = (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0)
    return peak * curve / weights.sum()  # |curve| <= sum of weights: the peak bounds it


def blink_openness(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Eye openness over times ``t``: 1 between blinks, down to ``1 - BLINK_DEPTH`` in one."""
    openness = np.ones_like(t)
    end = float(t[-1]) if len(t) else 0.0
    start = rng.uniform(0.3, 2.0)  # the first blink comes soon, not after a fixed wait
    while start <= end:
        close = np.clip((t - start) / BLINK_CLOSE_S, 0, 1)
        opened = np.clip((t - start - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S, 0, 1)
        shut = np.where(t < start + BLINK_CLOSE_S + BLINK_HOLD_S, close, 1 - opened)
        shut = 0.5 - 0.5 * np.cos(np.pi * shut)  # eased: lids accelerate and slow down
        openness = np.minimum(openness, 1 - BLINK_DEPTH * shut)
        start += BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S + BLINK_GAP_MIN_S + rng.gamma(
            BLINK_GAP_SHAPE, BLINK_GAP_SCALE)
    return openness


def still_motion(n_frames: int, fps: float, seed: int, eye_open: np.ndarray) -> StillMotion:
    """``n_frames`` at ``fps`` of still motion for ``seed``; ``eye_open`` (2,) is the source's
    own eye-opening ratio, the level the eyes return to between blinks."""
    if n_frames < 1 or fps <= 0:
        raise ValueError(f"still motion needs frames and a frame rate, got {n_frames} at {fps}")
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames, dtype=np.float64) / fps
    pitch, yaw, roll = (smooth_noise(rng, t, HEAD_DEGREES[k]) for k in ("pitch", "yaw", "roll"))
    breath = np.sin(2 * np.pi * rng.uniform(*BREATH_HZ) * t + rng.uniform(0, 2 * np.pi))
    openness = blink_openness(rng, t)
    rot = get_rotation_matrix(*(torch.from_numpy(a) for a in (pitch, yaw, roll)))
    translation = np.zeros((n_frames, 3))
    translation[:, 1] = BREATH_RISE * breath
    ratios = np.asarray(eye_open, np.float64).reshape(1, 2) * openness[:, None]
    motion = DrivingMotion(
        fps=float(fps),
        scale=(1.0 + BREATH_SCALE * breath)[:, None].astype(np.float32),
        R=rot.numpy().astype(np.float32),
        exp=np.zeros((n_frames, NUM_KP, 3), np.float32),
        t=translation.astype(np.float32),
        c_eyes=ratios.astype(np.float32),
    )
    return StillMotion(pitch, yaw, roll, openness, motion)
