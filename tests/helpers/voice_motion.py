"""A small deterministic ``VoiceMotion`` for routing tests (the JoyVASA port is separate).

It generates a plausible motion from the audio's loudness (the jaw opens with the envelope, the
head turns slowly with a seeded phase), so its frames, seed and length are real, and it says
what a missing provider says when told to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.liveportrait.template import NUM_KP, DrivingMotion
from pipeline.models.liveportrait.keypoints import get_rotation_matrix


class EnvelopeVoice:
    """Motion from the audio envelope; ``absent`` makes ``missing()`` report it."""

    def __init__(self, absent: str | None = None) -> None:
        self.absent = absent
        self.calls: list[tuple[int, float, int, int | None]] = []

    def missing(self) -> str | None:
        return self.absent

    def generate(self, audio_16k: np.ndarray, fps: float, n_frames: int, *, seed: int,
                 steps: int | None, progress: Callable[[float], None] | None = None
                 ) -> DrivingMotion:
        self.calls.append((n_frames, fps, seed, steps))
        hop = 16000 / fps
        env = np.array([np.abs(audio_16k[int(i * hop):int((i + 1) * hop)]).mean()
                        if int(i * hop) < len(audio_16k) else 0.0 for i in range(n_frames)])
        t = np.arange(n_frames) / fps
        phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
        yaw = 8.0 * np.sin(2 * np.pi * 0.3 * t + phase)
        zero = torch.zeros(n_frames, dtype=torch.float64)
        rot = get_rotation_matrix(zero, torch.from_numpy(yaw), zero).numpy()
        exp = np.zeros((n_frames, NUM_KP, 3), np.float32)
        exp[:, 19, 1] = 0.05 * env / max(float(env.max()), 1e-6)  # a lip keypoint opens
        exp[:, 1, 0] = 0.02 * np.sin(t)  # a brow moves
        if progress is not None:
            progress(1.0)
        return DrivingMotion(fps=fps, scale=np.full((n_frames, 1), 1.5, np.float32),
                             R=rot.astype(np.float32), exp=exp,
                             t=np.zeros((n_frames, 3), np.float32))
