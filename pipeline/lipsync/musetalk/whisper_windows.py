"""MuseTalk's per-frame audio windows, cut on demand from the joined whisper encoder states.

``pipeline.musetalk.audio.frame_windows`` builds every frame's (50, 384) window at once, as the
official ``get_whisper_chunk`` does: 77 KB per frame in float32, over a gigabyte for ten minutes
of audio. The chain needs one batch at a time, so ``WhisperWindows`` keeps the padded states
(about a sixth of that) and cuts a batch's windows when asked, with the same padding and the
same window starts (``tests/test_musetalk_engine.py`` checks it equals ``frame_windows``).
"""

from __future__ import annotations

import math

import torch

from pipeline.musetalk.audio import PAD_LEFT, PAD_RIGHT, SAMPLE_RATE, STATES_PER_SECOND, WINDOW


class WhisperWindows:
    """``len`` = output frames; ``windows[a:b]`` -> (b - a, 10 * L, C) tensor, states' dtype."""

    def __init__(self, states: torch.Tensor, n_samples: int, fps: float, n_frames: int) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.step = STATES_PER_SECOND / fps
        self.n_frames = n_frames
        actual = math.floor(n_samples / SAMPLE_RATE * STATES_PER_SECOND)
        states = states[:, :actual]
        pad = math.ceil(self.step)
        last_start = math.floor((n_frames - 1) * self.step) if n_frames > 0 else 0
        behind = max(pad * 3 * PAD_RIGHT,
                     last_start + WINDOW - pad * PAD_LEFT - states.shape[1])
        zeros = states.new_zeros((1, 1, *states.shape[2:]))
        self.padded = torch.cat([zeros.expand(1, pad * PAD_LEFT, -1, -1), states,
                                 zeros.expand(1, behind, -1, -1)], dim=1)[0]  # (T', L, C)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, frames: slice) -> torch.Tensor:
        idx = range(*frames.indices(self.n_frames))
        _, layers, width = self.padded.shape
        if not idx:
            return self.padded.new_zeros((0, WINDOW * layers, width))
        starts = [math.floor(i * self.step) for i in idx]
        windows = torch.stack([self.padded[s:s + WINDOW] for s in starts])  # (n, 10, L, C)
        return windows.reshape(len(starts), WINDOW * layers, width)
