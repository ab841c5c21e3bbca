"""The lip-sync stage: Wav2Lip on the animated 512x512 LivePortrait crops (RGB uint8).

Per DISTINCT crop (the LivePortrait stage renders each distinct driving frame once and reuses it
across output frames) the landmarks are tracked, the face box derived and smoothed, and the
blend mask built once: ``prepare`` / ``prepare_sequence`` -> ``BaseFace``. Per OUTPUT frame only
the network and the blend run: ``sync``. No face detector runs on the frames, except once on
the first crop when no landmarks are handed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipeline.face.landmarker import Landmarker
from pipeline.lipsync import box
from pipeline.lipsync.wav2lip import blend

FACE_SIZE = 96  # Wav2Lip's input and output resolution (hparams.img_size)


@dataclass(frozen=True, slots=True, eq=False)
class BaseFace:
    """What one distinct crop needs for lip sync, computed once.

    ``landmarks`` (468, 2) float32 crop pixels; ``box`` (x1, y1, x2, y2) int pixel edges of the
    Wav2Lip face box; ``mask`` (y2-y1, x2-x1) float32 blend weight in [0, 1] over that box.
    """

    landmarks: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


def face_input(crop: np.ndarray, face_box: tuple[int, int, int, int]) -> np.ndarray:
    """The (6, 96, 96) float32 network input for one crop, exactly as the official inference:

    box crop, ``cv2.resize(face, (96, 96))`` (default bilinear, aspect not kept), BGR, masked copy
    with rows 48..95 zeroed first, then the unmasked reference (the same image), / 255.
    """
    x1, y1, x2, y2 = face_box
    face = cv2.resize(crop[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE))[:, :, ::-1]  # RGB -> BGR
    masked = face.copy()
    masked[FACE_SIZE // 2:] = 0
    pair = np.concatenate((masked, face), axis=2)  # (96, 96, 6)
    # float32 from the start: MPS has no float64 (the official /255. gives float64)
    return np.ascontiguousarray(pair.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


class LipSyncer:
    """Wav2Lip on crops: ``prepare`` once per distinct crop, ``sync`` per output frame, batched.

    ``landmarker`` is a ``pipeline.face.landmarks.FaceLandmarker`` (``track``, ``detect``,
    ``landmarks``); ``net`` a loaded ``Wav2Lip`` in eval mode on ``device``/``dtype``.
    """

    def __init__(self, net: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 batch_size: int = 8, *, landmarker: Landmarker, colour_match: bool = True) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.net = net
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.landmarker = landmarker
        self.colour_match = colour_match

    # -- per distinct crop ------------------------------------------------------------------------
    def _landmarks(self, crop: np.ndarray, prev: np.ndarray | None,
                   landmarker: Landmarker | None = None) -> np.ndarray:
        marker = landmarker or self.landmarker
        if prev is not None:
            return np.asarray(marker.track(crop, prev), dtype=np.float32)
        # only without any hint: a detection on the 512 crop (the face fills it), never a frame
        found = marker.detect(crop)
        return np.asarray(marker.landmarks(crop, found), dtype=np.float32)

    def _base(self, landmarks: np.ndarray, float_box: np.ndarray, shape: tuple[int, ...]
              ) -> BaseFace:
        face_box = box.integer_box(float_box, shape[1], shape[0])
        return BaseFace(landmarks, face_box, blend.lower_face_mask(landmarks, face_box))

    def prepare(self, crop_rgb: np.ndarray, prev_landmarks: np.ndarray | None = None) -> BaseFace:
        """Landmarks (tracked from ``prev_landmarks`` if given), box and mask for one crop."""
        lmk = self._landmarks(crop_rgb, prev_landmarks)
        h, w = crop_rgb.shape[:2]
        return self._base(lmk, box.padded_box(lmk, w, h), crop_rgb.shape)

    def prepare_sequence(self, crops: Sequence[np.ndarray],
                         first_landmarks: np.ndarray | None = None, *,
                         landmarker: Landmarker | None = None) -> list[BaseFace]:
        """``BaseFace`` for consecutive distinct crops (driving-frame order): landmarks tracked
        frame to frame from ``first_landmarks`` (e.g. the photo's, mapped into the crop), boxes
        smoothed over time without lag (``box.smooth_boxes``). ``landmarker`` is the job's own
        (e.g. a ``SteadyTracker`` counting its lost frames); the resident one is never changed."""
        landmarks, boxes, shapes = [], [], []
        prev = first_landmarks
        for crop in crops:  # one pass: the crops may be read lazily from a render cache
            prev = self._landmarks(crop, prev, landmarker)
            landmarks.append(prev)
            boxes.append(box.padded_box(prev, crop.shape[1], crop.shape[0]))
            shapes.append(crop.shape)
        if not landmarks:
            return []
        smoothed = box.smooth_boxes(np.stack(boxes))
        return [self._base(lmk, b, shape) for lmk, b, shape in zip(landmarks, smoothed, shapes,
                                                                   strict=True)]

    # -- per output frame -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, faces: np.ndarray, mels: np.ndarray) -> np.ndarray:
        """Network pass: faces (B,6,96,96) and mels (B,80,16) float32 -> (B,96,96,3) float32 RGB
        in [0, 255]."""
        mel = np.ascontiguousarray(mels, dtype=np.float32)
        audio = torch.from_numpy(mel)[:, None]  # (B,80,16) -> (B,1,80,16)
        face = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32))
        out = self.net(audio.to(self.device, self.dtype), face.to(self.device, self.dtype))
        bgr = out.float().cpu().numpy().transpose(0, 2, 3, 1)  # (B,96,96,3) BGR in [0,1]
        return np.ascontiguousarray(bgr[..., ::-1]) * np.float32(255.0)

    def paste(self, crop: np.ndarray, generated: np.ndarray, base: BaseFace) -> np.ndarray:
        """One generated (96,96,3) RGB face blended into its crop with the base's mask."""
        patch = blend.resize_generated(generated, base.box)
        return blend.blend(crop, patch, base.mask, base.box, self.colour_match)

    def sync(self, crops: Sequence[np.ndarray], bases: Sequence[BaseFace],
             mel_chunks: np.ndarray) -> list[np.ndarray]:
        """Output frames: ``crops[i]`` with its mouth re-synced to ``mel_chunks[i]`` (80, 16).

        One entry per output frame; a distinct crop may appear many times (with its BaseFace).
        Returns RGB uint8 crops, new arrays (the inputs are not modified).
        """
        if not len(crops) == len(bases) == len(mel_chunks):
            raise ValueError(f"crops ({len(crops)}), bases ({len(bases)}) and mel chunks "
                             f"({len(mel_chunks)}) must match one to one")
        out: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            idx = range(start, min(start + self.batch_size, len(crops)))
            faces = np.stack([face_input(crops[i], bases[i].box) for i in idx])
            generated = self.generate(faces, mel_chunks[start: idx.stop])
            out += [self.paste(crops[i], g, bases[i]) for i, g in zip(idx, generated, strict=True)]
        return out
