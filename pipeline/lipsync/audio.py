"""How many output frames an audio track needs, and their Wav2Lip mel windows."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from pipeline.media.mel import mel_chunks, mel_spectrogram

# Float noise allowance in frame counting: 5.0 s * 25 fps must give 125 frames, not 126.
_EPS_FRAMES = 1e-6


def output_frame_count(duration: float, fps: Fraction | float) -> int:
    """``ceil(duration * fps)``: the fewest frames whose span (n / fps) covers the audio.

    One frame per 1/fps of audio, the last one starting before the audio ends; the official
    inference instead stops ~120-150 ms early (its last full 16-column mel window).
    """
    if duration <= 0:
        raise ValueError(f"audio duration must be positive, got {duration}")
    return max(1, math.ceil(duration * float(fps) - _EPS_FRAMES))


def frame_mels(samples16k: np.ndarray, fps: Fraction | float, n_frames: int) -> np.ndarray:
    """(n_frames, 80, 16) float32 mel windows: frame i from column ``int(i * 80 / fps)``,
    padded with silence past the end so every output frame has one."""
    return mel_chunks(mel_spectrogram(samples16k), fps, n_frames)
