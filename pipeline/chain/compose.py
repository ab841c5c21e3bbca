"""The per-output-frame half of the chain: lip sync -> enhance -> paste back -> encode.

Works in the 512 crop space the LivePortrait stage hands over. Everything that depends only on a
distinct rendered crop (landmarks, the lip-sync engine's box, mask, latents) is computed once per
distinct crop; only the mouth (one engine pass per output frame), the restoration and the
paste-back run per frame.
Frames stream through in chunks of ``batch_size``; the encoder runs on its own thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from pipeline.chain.stageclock import StageClock
from pipeline.enhance.stage import Enhancer, smooth_landmarks
from pipeline.face.paste import PasteBack
from pipeline.lipsync.engine import FrameFeatures, LipSyncEngine, PreparedCrop, sync_frames
from pipeline.liveportrait.animate import AnimationResult
from pipeline.media.lazy_frames import LazyFrames
from pipeline.media.video import VideoWriter
from pipeline.spec import CancelToken, ProgressFn

STAGE = "compose"


class DistinctCrops(LazyFrames):
    """The animation's distinct crops as a lazy sequence (read from the render cache on demand)."""

    def __init__(self, anim: AnimationResult) -> None:
        self._anim = anim

    def __len__(self) -> int:
        return self._anim.n_distinct

    def _frame(self, k: int) -> np.ndarray:
        return self._anim.crop(k)


class FrameObserver(Protocol):
    """Sees every chunk as it is composed (the job's quality scoring keeps its sample)."""

    def see(self, start: int, before: Sequence[np.ndarray], after: Sequence[np.ndarray],
            frames: np.ndarray) -> None:
        """Output frames ``start ..``; their crops before and after lip sync."""


@dataclass(slots=True)
class Composer:
    """Turns the animation into encoded frames. ``syncer`` (the lip-sync engine) / ``enhancer``
    are None when skipped."""

    syncer: LipSyncEngine[Any] | None
    enhancer: Enhancer | None
    paste: PasteBack
    clock: StageClock
    batch_size: int
    observer: FrameObserver | None = None

    def run(self, photo: np.ndarray, anim: AnimationResult, bases: Sequence[PreparedCrop],
            features: FrameFeatures | None, writer: VideoWriter, progress: ProgressFn,
            cancel: CancelToken) -> None:
        """Compose and write every output frame of ``anim``. ``bases``: the engine's preparation
        per distinct crop; ``features``: its audio features per output frame."""
        crop_of = lru_cache(maxsize=4 * self.batch_size)(anim.crop)
        aligned = (smooth_landmarks(np.stack([b.landmarks for b in bases]))
                   if bases and self.enhancer is not None else None)
        n = anim.n_frames
        for start in range(0, n, self.batch_size):
            cancel.raise_if_cancelled()
            ks = [int(k) for k in anim.order[start:start + self.batch_size]]
            before = [crop_of(k) for k in ks]
            synced = self._lipsync(before, [bases[k] for k in ks] if bases else [], features,
                                   start)
            crops = self._enhance(synced, [aligned[k] for k in ks] if aligned is not None else [])
            with self.clock.timed("paste", len(crops)):
                frames = np.stack([self.paste.paste(photo, c) for c in crops])
            if self.observer is not None:
                self.observer.see(start, before, synced, frames)
            with self.clock.timed("encode", len(crops)):
                writer.write(frames)  # queued: the encoder thread overlaps the next chunk
            progress(STAGE, min(1.0, (start + len(ks)) / n))

    def _lipsync(self, crops: list[np.ndarray], bases: list[PreparedCrop],
                 features: FrameFeatures | None, start: int) -> list[np.ndarray]:
        if self.syncer is None or features is None:
            return crops
        with self.clock.timed("lipsync", len(crops)):
            return sync_frames(self.syncer, crops, bases, features[start:start + len(crops)])

    def _enhance(self, crops: list[np.ndarray], landmarks: list[np.ndarray]) -> list[np.ndarray]:
        if self.enhancer is None:
            return crops
        with self.clock.timed("enhance", len(crops)):
            return self.enhancer.enhance(crops, landmarks)
