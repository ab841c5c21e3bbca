"""How many output frames an audio track needs, and their Wav2Lip mel windows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from pipeline.media.mel import mel_chunks, mel_spectrogram


def frame_mels(samples16k: np.ndarray, fps: Fraction | float, n_frames: int) -> np.ndarray:
    """(n_frames, 80, 16) float32 mel windows: frame i from column ``int(i * 80 / fps)``,
    padded with silence past the end so every output frame has one."""
    return mel_chunks(mel_spectrogram(samples16k), fps, n_frames)
