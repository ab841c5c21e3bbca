"""The enhance stage: GFPGAN on each crop's face, aligned to FFHQ, blended back by strength.

Follows the official GFPGANer / facexlib ``FaceRestoreHelper`` path, in LivePortrait crop space:
5-point similarity onto the FFHQ 512 template -> ``warpAffine`` with a constant grey border ->
RGB, ``(x/255 - 0.5)/0.5`` -> GFPGANv1Clean -> clamp to [-1, 1], ``round((x+1)/2*255)`` ->
inverse warp -> feathered blend. Differences, on purpose: landmarks are smoothed over time
(``smooth_landmarks``: zero-lag, over the distinct crops), the stored noise is used instead of
fresh noise per call (both keep the restoration steady from frame to frame), and the blend is
confined to the face oval with an adjustable weight, so hair and background stay as LivePortrait
rendered them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from pipeline.face.geometry import Affine, ffhq_align, warp
from pipeline.face.masks import face_mask, square_feather_mask
from pipeline.face.smooth import smooth_sequence
from pipeline.models.gfpgan import GFPGANv1Clean

FACE_SIZE = 512  # GFPGANv1.4 out_size; the FFHQ template is defined at 512
# facexlib align_warp_face: borderValue=(135, 133, 132) on a BGR image, i.e. RGB (132, 133, 135).
BORDER_RGB = (132, 133, 135)
# The aligned square's own edge is feathered too, so its grey border can never show.
ALIGNED_FEATHER_PX = 16
# Frames: the centred Gaussian over the distinct crops' landmarks (as the lip-sync box's).
LANDMARK_SIGMA = 1.0


def smooth_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(T, 468, 2) landmarks of the distinct crops, in driving order -> smoothed over time.

    Per-frame FaceMesh points jitter by about a pixel and GFPGAN restores each frame on its own,
    so an alignment following the jitter makes restored lips and eyes shimmer. Smoothing the
    distinct crops once, centred, adds no lag, and a crop shown again (loops) is aligned and
    restored exactly as before.
    """
    return smooth_sequence(landmarks, LANDMARK_SIGMA)


def to_network_input(
    faces: list[np.ndarray], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB faces -> (B, 3, H, W) in [-1, 1]: GFPGANer's normalize(0.5, 0.5)."""
    batch = torch.from_numpy(np.stack(faces)).to(device)  # (B, H, W, 3) uint8
    x = batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return ((x - 0.5) / 0.5).to(dtype)


def from_network_output(out: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in about [-1, 1] -> (B, H, W, 3) uint8, as basicsr ``tensor2img``."""
    img = (out.float().clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0
    return img.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def blend(crop: np.ndarray, restored: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``crop + weight * (restored - crop)`` rounded to uint8; weight (H, W) in [0, 1].

    Where ``weight`` is 0 the crop's pixels come back bit for bit.
    """
    c = crop.astype(np.float32)
    out = c + weight[..., None].astype(np.float32) * (restored.astype(np.float32) - c)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _aligned_square() -> np.ndarray:
    mask = square_feather_mask(FACE_SIZE, ALIGNED_FEATHER_PX)
    mask.setflags(write=False)  # shared between calls
    return mask


def blend_weight(lmk: np.ndarray, align: Affine, shape: tuple[int, int], strength: float
                 ) -> np.ndarray:
    """(H, W) float32 blend weight in crop space: strength x face oval x aligned-square feather."""
    h, w = shape
    square = warp(_aligned_square(), align.inverse(), (w, h))
    return (strength * face_mask(lmk, (h, w)) * square).astype(np.float32)


class Enhancer:
    """Restores faces in 512 crops with a loaded GFPGANv1Clean, ``batch_size`` faces per call.

    Holds no state between calls: the landmarks come smoothed (``smooth_landmarks``).
    """

    def __init__(
        self,
        net: GFPGANv1Clean,
        device: torch.device,
        dtype: torch.dtype,
        strength: float,
        batch_size: int,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"enhance strength must be in [0, 1], got {strength}")
        self.net = net
        self.device = device
        self.dtype = dtype
        self.strength = float(strength)
        self.batch_size = max(1, int(batch_size))

    def enhance(self, crops: list[np.ndarray], landmarks: list[np.ndarray]) -> list[np.ndarray]:
        """Restored copies of ``crops`` ((H, W, 3) uint8 RGB), given their (468, 2) landmarks
        (already smoothed over time: ``smooth_landmarks``).

        Strength 0 returns the crops unchanged without running the network.
        """
        if len(crops) != len(landmarks):
            raise ValueError(f"{len(crops)} crops but {len(landmarks)} landmark sets")
        smoothed = [np.asarray(lmk, dtype=np.float64) for lmk in landmarks]
        if self.strength == 0.0:
            return [c.copy() for c in crops]
        aligns = [ffhq_align(lmk, FACE_SIZE) for lmk in smoothed]
        results: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            idx = range(start, min(start + self.batch_size, len(crops)))
            faces = [
                warp(crops[i], aligns[i], FACE_SIZE, border_value=BORDER_RGB) for i in idx
            ]
            restored = self.restore(faces)
            for i, face in zip(idx, restored, strict=True):
                h, w = crops[i].shape[:2]
                back = warp(face, aligns[i].inverse(), (w, h))
                weight = blend_weight(smoothed[i], aligns[i], (h, w), self.strength)
                results.append(blend(crops[i], back, weight))
        return results

    def restore(self, faces: list[np.ndarray]) -> list[np.ndarray]:
        """GFPGAN on aligned (512, 512, 3) uint8 RGB faces, one batch on the device."""
        with torch.inference_mode():
            out = self.net(to_network_input(faces, self.device, self.dtype))
        return list(from_network_output(out))
