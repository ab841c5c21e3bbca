"""Face parsing for MuseTalk's blend mask, as the official ``FaceParsing`` and ``blending.py``.

Official flow (``musetalk/utils/face_parsing/__init__.py``, ``musetalk/utils/blending.py``,
v1.5 defaults of ``scripts/inference.py`` / ``realtime_inference.py``):

1. ``preprocess``: the RGB face region (a PIL image made from the cv2 frame's BGR channels
   reversed) is resized to 512 x 512 with PIL bilinear, scaled to 0..1 (``ToTensor``) and
   ImageNet-normalised (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
2. BiSeNet's main head, argmax over the 19 CelebAMask-HQ classes (1 skin, 10 nose, 11 mouth,
   12 upper lip, 13 lower lip, 14 neck...).
3. ``class_mask``: classes -> a 0/255 mask by ``ParsingMode`` (v1.5 uses ``JAW``: the skin
   dilated downwards by a cone-shaped kernel, eroded on the cheeks outside a centre band of
   +-90 px, plus the mouth and lips, minus the nose).
4. ``face_seg``: the 512 x 512 mask resized back to the region's size with PIL's default filter
   for "L" images (bicubic).
5. ``blend_mask`` (``get_image_prepare_material``): only the face box's part of that mask is kept,
   only below ``upper_boundary_ratio`` (0.5) of the region's height, then Gaussian-blurred with a
   kernel of ``int(0.1 * width // 2 * 2) + 1`` (the realtime/avatar path; ``get_image`` in
   ``inference.py`` uses 0.05).

6. The official blend (``get_image_blending``, realtime path), for the engine to follow: the
   256 x 256 output face is resized with ``cv2.resize`` (default bilinear) to the extended face
   box, pasted into the region at the box, and the region composited over the frame at the crop
   box through PIL ``Image.paste`` with ``blend_mask`` as its "L" mask.

All arrays here are RGB. Everything is a pure function of its inputs (no I/O).
"""

from __future__ import annotations

from enum import Enum

import cv2
import numpy as np
import torch
from PIL import Image

PARSE_SIZE = 512
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CHEEK_WIDTH = 90  # v1.5 --left_cheek_width / --right_cheek_width
UPPER_BOUNDARY_RATIO = 0.5
BLUR_FRACTION = 0.1  # realtime (avatar) path
EXPAND = 1.5  # get_crop_box
EXTRA_MARGIN = 10  # v1.5 --extra_margin: the face box reaches this many pixels further down


class ParsingMode(Enum):
    """The official ``parsing_mode`` values; v1.5 uses ``jaw``."""

    RAW = "raw"
    JAW = "jaw"
    NECK = "neck"


def preprocess(region_rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, 512, 512) float32 normalised BiSeNet input."""
    if region_rgb.dtype != np.uint8 or region_rgb.ndim != 3 or region_rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {region_rgb.shape} {region_rgb.dtype}")
    image = Image.fromarray(region_rgb).resize((PARSE_SIZE, PARSE_SIZE), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def _jaw_kernel() -> np.ndarray:
    """The official 33 x 33 cone-then-column dilation kernel (grows the skin downwards)."""
    cone, tail = 21, 12
    size = cone + tail
    kernel = np.zeros((size, size), dtype=np.uint8)
    centre = size // 2
    for row in range(cone // 2, cone):
        width = 2 * (row - cone // 2) + 1
        kernel[row, centre - width // 2:centre + width // 2 + 1] = 1
    base = int(kernel[cone - 1].sum())
    for row in range(cone, size):
        kernel[row, max(0, centre - base // 2):min(size, centre + base // 2 + 1)] = 1
    return kernel


def _cheek_mask(left: int = CHEEK_WIDTH, right: int = CHEEK_WIDTH) -> np.ndarray:
    mask = np.zeros((PARSE_SIZE, PARSE_SIZE), dtype=np.uint8)
    centre = PARSE_SIZE // 2
    cv2.rectangle(mask, (0, 0), (centre - left, PARSE_SIZE), 255, -1)
    cv2.rectangle(mask, (centre + right, 0), (PARSE_SIZE, PARSE_SIZE), 255, -1)
    return mask


def class_mask(classes: np.ndarray, mode: ParsingMode = ParsingMode.JAW) -> np.ndarray:
    """(512, 512) int class map -> (512, 512) uint8 mask of 0 / 255 (the official rules)."""
    parsing = classes.astype(np.int64)
    if mode is ParsingMode.NECK:
        keep = np.isin(parsing, [1, 11, 12, 13, 14])
    elif mode is ParsingMode.JAW:
        face = (np.isin(parsing, [1]) * 255).astype(np.uint8)
        dilated = cv2.dilate(face, _jaw_kernel(), iterations=1)
        cheek_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (35, 3))
        eroded = cv2.erode(dilated, cheek_kernel, iterations=2)
        cheeks = _cheek_mask()
        region = cv2.bitwise_or(cv2.bitwise_and(eroded, cheeks),
                                cv2.bitwise_and(dilated, ~cheeks))
        keep = ((region == 255) & ~np.isin(parsing, [10])) | np.isin(parsing, [11, 12, 13])
    else:
        keep = np.isin(parsing, [1, 11, 12, 13])
    return np.where(keep, 255, 0).astype(np.uint8)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The official ``face_seg`` resize of the 512 mask to the region (PIL "L", bicubic)."""
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.BICUBIC))


Box = tuple[int, int, int, int]


def crop_box(face_box: Box, expand: float = EXPAND) -> Box:
    """The official ``get_crop_box``: a square of side ``2 * int(max(w, h) // 2 * expand)``
    around the face box's centre (integer maths as the official)."""
    x, y, x1, y1 = face_box
    xc, yc = (x + x1) // 2, (y + y1) // 2
    s = int(max(x1 - x, y1 - y) // 2 * expand)
    return xc - s, yc - s, xc + s, yc + s


def crop_region(image: np.ndarray, box: Box) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with the parts outside the image black, as PIL's ``crop`` (the
    official code crops the expanded face region from the frame with it)."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def blend_mask(
    region_mask: np.ndarray,
    face_box: Box,
    upper_boundary_ratio: float = UPPER_BOUNDARY_RATIO,
    blur_fraction: float = BLUR_FRACTION,
) -> np.ndarray:
    """The official ``get_image_prepare_material`` mask, in the region's (crop box's) pixels.

    ``region_mask`` is the parsing mask resized to the region (``resize_mask``); ``face_box`` is
    ``(x, y, x1, y1)`` of the face inside the region. Returns uint8 0..255, same size.
    """
    height, width = region_mask.shape
    x, y, x1, y1 = face_box
    mask = np.zeros_like(region_mask)
    ys, xs = slice(max(y, 0), min(y1, height)), slice(max(x, 0), min(x1, width))
    mask[ys, xs] = region_mask[ys, xs]
    mask[: int(height * upper_boundary_ratio)] = 0
    k = int(blur_fraction * width // 2 * 2) + 1
    return np.asarray(cv2.GaussianBlur(mask, (k, k), 0))
