"""Load a job's face photo as HxWx3 uint8 RGB, upright, whatever its mode or bit depth."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import InputError
from pipeline.media import phase

IMAGE_FORMATS = ".jpg .jpeg .png .webp"
_FIX = f"submit a face photo as one of: {IMAGE_FORMATS}"
_HEIF = {".heic", ".heif"}
_RESUBMIT = "the upload may not have finished: submit the photo again"


def load_image(path: Path, max_pixels: int = 40_000_000) -> np.ndarray:
    """Read ``path`` as an upright HxWx3 uint8 RGB array, or raise ``InputError``.

    The EXIF orientation is applied (phone photos are stored sideways), transparency is
    composited on white, and 16-bit, CMYK, grayscale and palette images are converted. The pixel
    count is checked from the header before any pixel is decoded (decompression bombs).
    """
    path = Path(path)
    _check_file(path)
    phase.decoding(path, "the face photo")
    with _open(path) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise _too_big(path, width, height, max_pixels)
        try:
            img.load()
            upright = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
            raise InputError(f"the image is damaged or incomplete ({exc})", file=path,
                             fix=_RESUBMIT) from exc
        try:
            return _to_rgb(upright)
        except ValueError as exc:  # a colour mode Pillow cannot convert to RGB
            raise InputError(f"the image's colour mode {upright.mode} is not supported",
                             file=path, fix="save the photo as an ordinary RGB JPEG or PNG"
                             ) from exc


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError("the image file does not exist", file=path, fix=_FIX)
    if path.stat().st_size == 0:
        raise InputError("the image file is empty (0 bytes)", file=path, fix=_RESUBMIT)


def _open(path: Path) -> Image.Image:
    """Open the header only. Pillow's own bomb guard is turned into our error, not a warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"the image is far too large to process ({exc})", file=path,
                         fix="resize the photo to at most a few thousand pixels a side") from exc
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in _HEIF:
            raise InputError(
                "HEIC photos cannot be read by this installation (Pillow has no HEIF support)",
                file=path,
                fix="export the photo as JPEG (Photos: File > Export), or install pillow-heif",
            ) from exc
        raise InputError("the file is not an image facedrop can read", file=path,
                         fix=_FIX) from exc


def _too_big(path: Path, width: int, height: int, max_pixels: int) -> InputError:
    return InputError(
        f"the image is {width}x{height} ({width * height / 1e6:.0f} MP); "
        f"the limit is {max_pixels / 1e6:.0f} MP",
        file=path,
        fix="resize the photo (the output is at most 1280 px a side anyway), "
            "or raise limits.max_image_pixels",
    )


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to HxWx3 uint8 RGB; transparent pixels become white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit (or 32-bit) grayscale: Pillow's convert('L') clips instead of scaling.
        values = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if values.max(initial=0) > 255 or img.mode != "F" else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
