"""The voice-motion cache: JoyVASA's sampled motion kept on disk, so a rerun samples nothing.

The stage asks for a job's motion before it looks in the render cache (the render cache is keyed
by the motion's hash), so without this a rerun would run the whole DDPM again only to find every
frame rendered. Entries live at ``<cache_dir>/voice-motion/<key>.pkl`` as official-layout
driving templates (``save_template``: atomic temp file + rename; ``load_template``: the
restricted unpickler, so a tampered entry is refused and dropped, never executed). The key is
the sha256 of everything the motion depends on: the audio's samples, the frame rate, the frame
count, the seed, the step count, and the weights' identity with the device and dtype
(``VoiceMotionKey``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.liveportrait.template import DrivingMotion, load_template, save_template

FOLDER = "voice-motion"


@dataclass(frozen=True, slots=True)
class VoiceMotionKey:
    """What one generated motion depends on (``weights``: the loaded files' identity, the
    device, the dtype and the post-processing, see ``JoyVasaMotion.identity``)."""

    audio_sha256: str
    fps: float
    n_frames: int
    seed: int
    steps: int | None  # None: the official sampler
    weights: str

    def digest(self) -> str:
        steps = "official" if self.steps is None else str(self.steps)
        text = (f"audio={self.audio_sha256}|fps={self.fps!r}|frames={self.n_frames}"
                f"|seed={self.seed}|steps={steps}|weights={self.weights}")
        return hashlib.sha256(text.encode()).hexdigest()


def audio_sha256(audio: np.ndarray) -> str:
    """The hash of mono float32 samples (their count is in the bytes' length)."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


class VoiceMotionStore:
    """Generated voice motion keyed by ``VoiceMotionKey``."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / FOLDER

    def path_for(self, key: VoiceMotionKey) -> Path:
        return self.root / f"{key.digest()}.pkl"

    def get(self, key: VoiceMotionKey) -> DrivingMotion | None:
        """The stored motion, or None on a miss (an unreadable or mismatched entry is deleted,
        then a miss)."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            motion = load_template(path)
        except (InputError, OSError):
            path.unlink(missing_ok=True)
            return None
        if motion.n_frames != key.n_frames or motion.fps != key.fps:
            path.unlink(missing_ok=True)
            return None
        return motion

    def put(self, key: VoiceMotionKey, motion: DrivingMotion) -> Path:
        path = self.path_for(key)
        save_template(motion, path)  # atomic: a reader never sees half an entry
        return path
