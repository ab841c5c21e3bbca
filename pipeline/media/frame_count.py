"""How many video frames an audio track needs: the one rule the runner and every stage share."""

from __future__ import annotations

import math
from fractions import Fraction

# Float noise allowance: 4.0 s * 25 fps may come out as 100.00000000001 frames, not 101.
_EPS_FRAMES = 1e-6


def output_frame_count(duration: float, fps: Fraction | float) -> int:
    """``ceil(duration * fps)``: the fewest frames whose span (n / fps) covers the audio.

    The last frame starts before the audio's last sample, so the video is never shorter than
    the audio (longer by less than one frame period); at least one frame. The official Wav2Lip
    inference instead stops ~120-150 ms early (its last full 16-column mel window).
    Raises ``ValueError`` for a duration or frame rate that is not positive.
    """
    if not duration > 0:
        raise ValueError(f"audio duration must be positive, got {duration}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(1, math.ceil(duration * float(fps) - _EPS_FRAMES))
