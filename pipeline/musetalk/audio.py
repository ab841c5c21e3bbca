"""MuseTalk 1.5's audio features: whisper-tiny encoder states, cut into one window per video frame.

As the official ``AudioProcessor`` (``musetalk/utils/audio_processor.py``):

1. The 16 kHz mono waveform is cut into 30 s segments; each is turned into an 80 x 3000 log-mel
   by transformers' ``WhisperFeatureExtractor`` (padded to 30 s) and encoded separately.
2. The encoder's ``hidden_states`` (the embedding input plus each of the 4 layers' outputs, the
   last one after the final layer norm: 5 states) are stacked: (1, 1500, 5, 384) per segment,
   50 states per second; segments are joined in time.
3. ``get_whisper_chunk``: the states are trimmed to ``floor(seconds * 50)``, padded with zeros,
   ``2 * ceil(50 / fps)`` states in front and ``3 * 2 * ceil(50 / fps)`` behind, and video frame
   ``i`` takes the 10 states from ``floor(i * 50 / fps)``: a window of (10, 5, 384), flattened
   time-major to (50, 384) tokens for the UNet's cross-attention.

Two documented differences, both for inputs the official scripts never see: the official code
truncates ``fps`` to an integer (29.97 becomes 29, drifting 1 frame in 30 s); here the real rate is
used, identical for integer rates. The official frame count is ``floor(seconds * fps)``; here the
caller names ``n_frames`` (the video's), and a window reaching past the padded states is filled
with zeros, like the official padding.

The feature extractor runs its torch STFT path (``torch.stft``; no torchaudio, no torchvision).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

SAMPLE_RATE = 16_000
SEGMENT_SAMPLES = 30 * SAMPLE_RATE  # the official 30 s segments
STATES_PER_SECOND = 50  # whisper encoder positions per second
PAD_LEFT = 2  # official audio_padding_length_left / _right
PAD_RIGHT = 2
WINDOW = 2 * (PAD_LEFT + PAD_RIGHT + 1)  # 10 encoder states per video frame


def segments(samples: np.ndarray) -> list[np.ndarray]:
    """The official 30 s split (the last segment shorter; none for empty audio)."""
    return [samples[i:i + SEGMENT_SAMPLES] for i in range(0, len(samples), SEGMENT_SAMPLES)]


def log_mels(extractor: Callable[..., Any], samples: np.ndarray) -> list[torch.Tensor]:
    """One (1, 80, 3000) float32 log-mel per 30 s segment (the official ``get_audio_feature``)."""
    return [
        extractor(seg, return_tensors="pt", sampling_rate=SAMPLE_RATE).input_features
        for seg in segments(samples)
    ]


def stack_states(hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
    """The encoder's ``hidden_states`` tuple -> (1, T, layers + 1, 384)."""
    return torch.stack(tuple(hidden_states), dim=2)


def frame_windows(states: torch.Tensor, n_samples: int, fps: float, n_frames: int) -> torch.Tensor:
    """(1, T, L, C) joined encoder states -> (n_frames, WINDOW * L, C) per-frame windows."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    step = STATES_PER_SECOND / fps
    actual = math.floor(n_samples / SAMPLE_RATE * STATES_PER_SECOND)
    states = states[:, :actual]
    pad = math.ceil(step)
    last_start = math.floor((n_frames - 1) * step) if n_frames > 0 else 0
    behind = max(pad * 3 * PAD_RIGHT, last_start + WINDOW - pad * PAD_LEFT - states.shape[1])
    zeros = states.new_zeros((1, 1, *states.shape[2:]))
    padded = torch.cat(
        [zeros.expand(1, pad * PAD_LEFT, -1, -1), states, zeros.expand(1, behind, -1, -1)], dim=1
    )
    starts = [math.floor(i * step) for i in range(n_frames)]
    if not starts:
        return padded.new_zeros((0, WINDOW * states.shape[2], states.shape[3]))
    windows = torch.cat([padded[:, s:s + WINDOW] for s in starts], dim=0)  # (n, 10, L, C)
    return windows.reshape(n_frames, WINDOW * states.shape[2], states.shape[3])
