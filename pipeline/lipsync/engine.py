"""The seam between the chain and a lip-sync engine (Wav2Lip, MuseTalk, ...).

The chain knows only this protocol; which engine runs is a name in the registry
(``pipeline.lipsync.registry``). An engine works in the 512 crop space of the animated crops:

- per DISTINCT crop, once: ``prepare`` -> whatever the engine needs later (landmarks, box, mask,
  cached latents), as one object per crop that at least carries the tracked ``landmarks``
  (the enhancer aligns with them);
- per JOB, once: ``audio_features`` -> one window per output frame (Wav2Lip: mel windows,
  MuseTalk: whisper feature windows), indexed by output frame;
- per BATCH of output frames: ``mouths`` -> the synced mouth region and its blend mask in crop
  space (``MouthPatch``), blended into the crop by the one engine-independent ``apply_mouth``.

Pixels where an engine's mask is 0 come back bit-exact: ``apply_mouth`` mixes in float and
rounds once, so ``crop + 0 * (patch - crop)`` is the crop's own integer value.

Caches: an engine's ``version`` keys whatever it caches (MuseTalk's avatar cache). The render
cache of the animated crops does not depend on the engine: the animation only knows whether
lip sync follows (``AnimateOptions.hold_lips``), so every engine reuses the same crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from pipeline.face.landmarker import Landmarker


class PreparedCrop(Protocol):
    """What every engine's per-crop preparation carries: the crop's tracked landmarks."""

    @property
    def landmarks(self) -> np.ndarray:
        """(468, 2) float32 FaceMesh landmarks in crop pixels."""
        ...


P = TypeVar("P", bound=PreparedCrop)


class FrameFeatures(Protocol):
    """A job's audio features: one window per output frame, sliced per batch of frames
    (an array, or windows cut on demand)."""

    def __len__(self) -> int: ...

    def __getitem__(self, frames: slice, /) -> Any: ...


@dataclass(frozen=True, slots=True, eq=False)
class MouthPatch:
    """One output frame's synced mouth: ``patch`` (h, w, 3) float32 RGB in [0, 255] over ``box``
    (x1, y1, x2, y2, pixel edges of the 512 crop), blended in with ``mask`` (h, w) float32 in
    [0, 1]. Outside the mask (weight 0) the crop keeps its pixels exactly."""

    box: tuple[int, int, int, int]
    patch: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True, slots=True)
class EngineContext:
    """What loading an engine needs from the chain: files, device, dtype, batch, landmarker.

    ``cache_dir`` is the chain's cache folder (engines keep per-crop caches beside the render
    cache, within ``cache_mb`` = ``render_cache_mb``); ``dtype`` is already chosen by the
    ``dtype`` rule for the engine's fp16 status.
    """

    weights_dir: Path
    cache_dir: Path
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    landmarker: Landmarker
    cache_mb: int


class LipSyncEngine(Protocol[P]):
    """A lip-sync engine on the animated 512 crops (RGB uint8). See the module docstring."""

    @property
    def name(self) -> str:
        """The registry name it was built under (``wav2lip``, ``wav2lip_gan``, ``musetalk``)."""
        ...

    @property
    def version(self) -> str:
        """Names the code and checkpoints behind its output: part of every cache key it keys."""
        ...

    @property
    def features_stage(self) -> str:
        """The timing-log stage name of its audio features (``mel``, ``whisper``)."""
        ...

    def prepare(self, crops: Sequence[np.ndarray], first_landmarks: np.ndarray | None = None,
                *, landmarker: Landmarker | None = None) -> list[P]:
        """One preparation per distinct crop, in driving-frame order (landmarks tracked from
        ``first_landmarks``). ``landmarker`` is the job's own; the resident one stays as is."""
        ...

    def audio_features(self, samples16k: np.ndarray, fps: Fraction | float,
                       n_frames: int) -> FrameFeatures:
        """One feature window per output frame (first axis ``n_frames``), 16 kHz mono input."""
        ...

    def mouths(self, crops: Sequence[np.ndarray], prepared: Sequence[P],
               features: Any) -> list[MouthPatch]:
        """The synced mouth of each output frame: ``crops[i]`` with ``prepared[i]`` (its crop's
        preparation) and ``features[i]``, one to one. The crops are not modified."""
        ...


class EngineIdentity:
    """The read-only ``name`` and ``version`` of ``LipSyncEngine``, kept in one place: every
    engine class derives from this and passes both on from its loader."""

    def __init__(self, name: str, version: str) -> None:
        self._name = name
        self._version = version

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version


def apply_mouth(crop: np.ndarray, mouth: MouthPatch) -> np.ndarray:
    """A copy of ``crop`` (RGB uint8) with the mouth blended in by its mask.

    ``crop + mask * (patch - crop)`` in float32, rounded once: where the mask is 0 the crop's
    integer value comes back exactly.
    """
    x1, y1, x2, y2 = mouth.box
    out = crop.copy()
    region = crop[y1:y2, x1:x2].astype(np.float32)
    mixed = region + mouth.mask[..., None] * (mouth.patch - region)
    out[y1:y2, x1:x2] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def sync_frames(engine: LipSyncEngine[P], crops: Sequence[np.ndarray], prepared: Sequence[P],
                features: Any) -> list[np.ndarray]:
    """Output frames: each crop with its mouth re-synced (new arrays)."""
    return [apply_mouth(c, m) for c, m in zip(crops, engine.mouths(crops, prepared, features),
                                               strict=True)]


def check_one_to_one(crops: Sequence[object], prepared: Sequence[object],
                     features: FrameFeatures) -> None:
    """Raise ``ValueError`` unless the three per-frame sequences have one entry per frame."""
    if not len(crops) == len(prepared) == len(features):
        raise ValueError(f"crops ({len(crops)}), prepared crops ({len(prepared)}) and audio "
                         f"features ({len(features)}) must match one to one")
