"""MuseTalk 1.5 behind the engine seam: a 256 x 256 face inpainted in one UNet pass.

Per distinct crop (the official "avatar preparation", ``realtime_inference.py``): landmarks
tracked, the official v1.5 face box (``musetalk_crop``), the 256 Lanczos face, its VAE latents
(lower half blanked + whole: 8 channels) and the BiSeNet-shaped blend mask. Both are kept in the
avatar cache (``avatar_cache``), keyed by the crop's pixels and box under the engine version, so
a repeat avatar runs neither the VAE encoder nor the face parser.
Per job: whisper-tiny encoder states of the whole recording, cut into one window per output
frame on demand (``whisper_windows``). Per batch: the UNet at timestep 0 and the VAE decoder
(``pipeline.musetalk.bundle.MuseTalk.infer``), each face resized back to its box (bilinear, as
the official) with the box's part of the mask.

The official blend pastes through PIL (``Image.paste`` with an "L" mask: integer maths); here the
one shared ``apply_mouth`` mixes in float and rounds once (values differ by at most 1), and where
the mask is 0 the crop's pixels are kept exactly. No colour matching: the official has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from pipeline.lipsync.musetalk import musetalk_crop as mcrop
from pipeline.lipsync.musetalk.avatar_cache import AvatarCache, avatar_key
from pipeline.lipsync.musetalk.whisper_windows import WhisperWindows
from pipeline.lipsync.tracking import track_landmarks
from pipeline.liveportrait.hashing import model_version
from pipeline.musetalk.bundle import MuseTalk
from pipeline.musetalk.configs import MuseTalkConfigs
from pipeline.musetalk.files import MuseTalkFiles
from pipeline.musetalk.parsing import blend_mask

CODE_VERSION = "mt1"  # bump when what the avatar cache stores or the output changes
AVATAR_SHARE = 4  # the avatar cache may hold 1/4 of render_cache_mb (an entry is ~1/8 a crop)


@dataclass(frozen=True, slots=True, eq=False)
class MuseFace:
    """One distinct crop, prepared: ``landmarks`` (468, 2) float32, the face ``box``, the blend
    ``mask`` (h, w) float32 over it, and the UNet's reference ``latents`` (8, 32, 32), model
    dtype, on the CPU."""

    landmarks: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray
    latents: torch.Tensor


class MuseTalkEngine(EngineIdentity):
    """``LipSyncEngine[MuseFace]`` over a loaded ``MuseTalk`` bundle."""

    features_stage = "whisper"

    def __init__(self, model: MuseTalk, landmarker: Landmarker, cache: AvatarCache,
                 batch_size: int, name: str, version: str) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        super().__init__(name, version)
        self.model = model
        self.landmarker = landmarker
        self.cache = cache
        self.batch_size = batch_size

    # -- per distinct crop ------------------------------------------------------------------------
    def prepare(self, crops: Sequence[np.ndarray], first_landmarks: np.ndarray | None = None,
                *, landmarker: Landmarker | None = None) -> list[MuseFace]:
        lmks = track_landmarks(crops, first_landmarks, landmarker or self.landmarker)
        if not lmks:
            return []
        h, w = crops[0].shape[:2]
        boxes = mcrop.face_boxes(lmks, w, h)
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        pending: list[tuple[int, str, np.ndarray]] = []  # misses, encoded a batch at a time
        missed = False
        for k, box in enumerate(boxes):
            crop = crops[k]  # read again (lazily): only a batch of crops is held at once
            key = avatar_key(crop, box)
            hit = self.cache.get(key)
            if hit is not None and hit["mask"].shape == (box[3] - box[1], box[2] - box[0]):
                found[k] = (hit["latents"], hit["mask"])
                continue
            pending.append((k, key, crop))
            if len(pending) == self.batch_size:
                found.update(self._prepare_batch(pending, boxes))
                pending, missed = [], True
        if pending:
            found.update(self._prepare_batch(pending, boxes))
            missed = True
        if missed:
            self.cache.evict()
        dtype = self.model.dtype
        return [MuseFace(lmk, box, found[k][1].astype(np.float32) / np.float32(255.0),
                         torch.from_numpy(found[k][0]).to(dtype))
                for k, (lmk, box) in enumerate(zip(lmks, boxes, strict=True))]

    def _prepare_batch(self, batch: list[tuple[int, str, np.ndarray]],
                       boxes: list[tuple[int, int, int, int]]
                       ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """VAE latents and blend masks of crops the cache lacks, by crop; each one stored."""
        faces = np.stack([mcrop.face_256(crop, boxes[k]) for k, _, crop in batch])
        latents = self.model.reference_latents(faces).float().cpu().numpy()
        out = {}
        for (k, key, crop), lat in zip(batch, latents, strict=True):
            mask = self._mask(crop, boxes[k])
            self.cache.put(key, {"latents": lat, "mask": mask})
            out[k] = (lat, mask)
        return out

    def _mask(self, crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The official ``get_image_prepare_material`` mask, the box's part, uint8 0..255."""
        region, square = mcrop.parsing_region(crop, box)
        sx, sy = square[:2]
        local = (box[0] - sx, box[1] - sy, box[2] - sx, box[3] - sy)
        return mcrop.box_part(blend_mask(self.model.parse(region), local), square, box)

    # -- per job ----------------------------------------------------------------------------------
    def audio_features(self, samples16k: np.ndarray, fps: Fraction | float,
                       n_frames: int) -> WhisperWindows:
        samples = np.asarray(samples16k, dtype=np.float32).reshape(-1)
        states = self.model.whisper_states(samples)  # 30 s segments, as the official
        return WhisperWindows(states, samples.size, float(fps), n_frames)

    # -- per batch of output frames ---------------------------------------------------------------
    def mouths(self, crops: Sequence[np.ndarray], prepared: Sequence[MuseFace],
               features: WhisperWindows | torch.Tensor) -> list[MouthPatch]:
        check_one_to_one(crops, prepared, features)
        out: list[MouthPatch] = []
        for start in range(0, len(crops), self.batch_size):
            stop = min(start + self.batch_size, len(crops))
            latents = torch.stack([prepared[i].latents for i in range(start, stop)])
            faces = self.model.infer(latents, features[start:stop])
            for i, face in zip(range(start, stop), faces, strict=True):
                p = prepared[i]
                out.append(MouthPatch(p.box, mcrop.resize_generated(face, p.box), p.mask))
        return out


def load_musetalk_engine(ctx: EngineContext, name: str,
                         configs: MuseTalkConfigs | None = None) -> MuseTalkEngine:
    """Load MuseTalk 1.5 from the official files under ``<weights>/musetalk``.

    ``configs`` defaults to the shipped (real) ones; tests pass reduced sizes.
    """
    model = MuseTalk.load(ctx.weights_dir, ctx.device, ctx.dtype, configs)
    files = MuseTalkFiles.under(ctx.weights_dir)
    tag = model_version(files.unet, files.vae, files.parsing)
    version = f"{CODE_VERSION}-{tag}-{str(ctx.dtype).removeprefix('torch.')}"
    cache = AvatarCache(ctx.cache_dir, version, ctx.cache_mb * 2**20 // AVATAR_SHARE)
    return MuseTalkEngine(model, ctx.landmarker, cache, ctx.batch_size, name, version)
