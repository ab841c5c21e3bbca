"""Wav2Lip behind the engine seam: the ``LipSyncer`` stage's own steps, unchanged.

Per distinct crop: ``LipSyncer.prepare_sequence`` (tracked landmarks, smoothed box, feathered
lower-face mask) -> ``BaseFace``. Per job: the official mel windows. Per batch: the official
96x96 BGR input, one network pass, the bicubic resize to the box and the colour match on the
mask's feather ring -> ``MouthPatch``. ``apply_mouth`` then does what ``blend.blend`` does.

The network pass is ``FastWav2Lip``'s: BatchNorm folded into the convs, the face encoder once per
distinct face, the decoder's high-resolution layers only on the rows the mask uses. The frames
match ``LipSyncer.sync`` to within float rounding (``tests/test_wav2lip_fast.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from pipeline.face.landmarker import Landmarker
from pipeline.lipsync.engine import (
    EngineContext,
    EngineIdentity,
    MouthPatch,
    check_one_to_one,
)
from pipeline.lipsync.wav2lip import blend
from pipeline.lipsync.wav2lip.audio import frame_mels
from pipeline.lipsync.wav2lip.load import load_wav2lip, wav2lip_path
from pipeline.lipsync.wav2lip.stage import BaseFace, LipSyncer, face_input
from pipeline.lipsync.wav2lip.wav2lip_fast import FastWav2Lip, first_used_row
from pipeline.liveportrait.hashing import model_version
from pipeline.models.fold import fold_sequential_pairs

CODE_VERSION = "w2l2"  # bump when this engine's output for the same inputs changes


class Wav2LipEngine(EngineIdentity):
    """``LipSyncEngine[BaseFace]`` over a ``LipSyncer`` (which holds the net, device, batch)."""

    features_stage = "mel"

    def __init__(self, syncer: LipSyncer, name: str, version: str,
                 fast: FastWav2Lip | None = None) -> None:
        super().__init__(name, version)
        self.syncer = syncer
        self.fast = fast  # None: the plain per-frame pass (``LipSyncer.generate``)

    def prepare(self, crops: Sequence[np.ndarray], first_landmarks: np.ndarray | None = None,
                *, landmarker: Landmarker | None = None) -> list[BaseFace]:
        return self.syncer.prepare_sequence(crops, first_landmarks, landmarker=landmarker)

    def audio_features(self, samples16k: np.ndarray, fps: Fraction | float,
                       n_frames: int) -> np.ndarray:
        return frame_mels(samples16k, fps, n_frames)

    def mouth(self, crop: np.ndarray, generated: np.ndarray, base: BaseFace) -> MouthPatch:
        """One generated (96, 96, 3) RGB face as a patch over the base's box (colour matched)."""
        patch = blend.resize_generated(generated, base.box)
        if self.syncer.colour_match:
            x1, y1, x2, y2 = base.box
            patch = blend.match_colour(patch, crop[y1:y2, x1:x2].astype(np.float32), base.mask)
        return MouthPatch(base.box, patch, base.mask)

    def mouths(self, crops: Sequence[np.ndarray], prepared: Sequence[BaseFace],
               features: np.ndarray) -> list[MouthPatch]:
        check_one_to_one(crops, prepared, features)
        out: list[MouthPatch] = []
        size = self.syncer.batch_size
        for start in range(0, len(crops), size):
            idx = range(start, min(start + size, len(crops)))
            faces = np.stack([face_input(crops[i], prepared[i].box) for i in idx])
            if self.fast is None:
                generated = self.syncer.generate(faces, features[start:idx.stop])
            else:
                first = min(first_used_row(prepared[i].mask) for i in idx)
                generated = self.fast.generate(faces, features[start:idx.stop], first)
            out += [self.mouth(crops[i], g, prepared[i]) for i, g in zip(idx, generated,
                                                                         strict=True)]
        return out


def load_wav2lip_engine(ctx: EngineContext, name: str) -> Wav2LipEngine:
    """Load ``wav2lip`` or ``wav2lip_gan`` from ``<weights>/wav2lip/<name>.pth``."""
    path = wav2lip_path(ctx.weights_dir, name)
    net = load_wav2lip(path, ctx.device, torch.float32)
    fold_sequential_pairs(net)  # in fp32, before any cast
    net = net.to(ctx.dtype)
    syncer = LipSyncer(net, ctx.device, ctx.dtype, ctx.batch_size, landmarker=ctx.landmarker)
    return Wav2LipEngine(syncer, name, f"{CODE_VERSION}-{model_version(path)}",
                         FastWav2Lip(net, ctx.device, ctx.dtype))
