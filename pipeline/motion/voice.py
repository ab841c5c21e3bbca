"""The voice-motion seam: audio in, LivePortrait motion out (JoyVASA behind it).

The Protocol is the interface agreed with the JoyVASA port (``pipeline/voice/provider.py:
JoyVasaMotion`` implements it structurally). The runner receives one by injection, so this
package never imports the networks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from pipeline.liveportrait.template import DrivingMotion


class VoiceMotion(Protocol):
    """Generates a job's motion from its voice."""

    def missing(self) -> str | None:
        """None when the voice weights are present and loadable; else a one-line user-facing
        reason that names the fix (`facedrop weights fetch voice`)."""

    def generate(self, audio_16k: np.ndarray, fps: float, n_frames: int, *, seed: int,
                 steps: int | None, progress: Callable[[float], None] | None = None
                 ) -> DrivingMotion:
        """Motion for exactly n_frames frames at fps from mono float32 16 kHz audio.
        steps None = the official 500-step DDPM. Deterministic for a seed on any device
        (noise drawn from a seeded CPU torch.Generator, then moved). progress gets 0..1."""
