"""The inputs of the voice-render parity (``tests/test_voice_render_parity.py``).

The scratch script that runs the official JoyVASA pipeline imports this file too, so both sides
get the very same photo, crop and voice. The crop stands in for the official cropper (face
detection and 203-point landmarks cannot run on random weights): ``crop_affine`` is the photo ->
512 crop transform the cropper would return as ``M_o2c``, and ``source_input`` is the official
``img_crop_256x256`` made from it (``warpAffine`` to 512, then INTER_AREA to 256).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.face.affine import Affine, warp
from pipeline.face.geometry import network_input_256

PHOTO_WH = (320, 360)  # even sides: the official resize_to_limit leaves the photo as it is
VOICE_SECONDS = 4.12  # 103 frames at 25 fps: two JoyVASA windows (the second starts at 100)
FPS = 25.0
SEED = 21
# the frames whose rendered crops are compared: the last of the first window, the first of the
# second (W + G at 512 is the slow part of the test: two frames)
FRAMES = (99, 100)
STRIDE = 8  # every 8th pixel of each 512 crop is kept (64 x 64 x 3 float32 per frame)


def photo() -> np.ndarray:
    """A smooth (H, W, 3) uint8 RGB picture with detail at several scales."""
    w, h = PHOTO_WH
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(x / 23.0) * np.cos(y / 31.0)
    g = 128 + 80 * np.cos((x + y) / 17.0) + 20 * np.sin(x / 5.0)
    b = 128 + 100 * np.sin(np.hypot(x - w / 2, y - h / 2) / 19.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def crop_affine() -> Affine:
    """Photo -> 512 crop: a face-sized square, slightly rotated, as the cropper would give."""
    w, h = PHOTO_WH
    return Affine.similarity(512 / 250.0, math.radians(4.0), np.array([w / 2, h / 2 - 10]),
                             np.array([256.0, 256.0]))


def source_input(image: np.ndarray, affine: Affine) -> np.ndarray:
    """The official ``img_crop_256x256`` for ``affine``: warp to 512, INTER_AREA to 256."""
    return np.ascontiguousarray(network_input_256(warp(image, affine, 512)))


def voice() -> np.ndarray:
    """VOICE_SECONDS of 16 kHz noise at speech level (float32)."""
    n = round(16000 * VOICE_SECONDS)
    return (torch.randn(n, generator=torch.Generator().manual_seed(11)) * 0.1).numpy()
