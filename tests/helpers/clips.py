"""Generated test media: a short face clip and random driving motion."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from pipeline.liveportrait.template import DrivingMotion

NTSC = Fraction(30000, 1001)


def make_clip(path: Path, image: Path, frames: int, fps: Fraction = NTSC, size: int = 256,
              width: int | None = None) -> Path:
    """Encode the photo's face (a 256 square around it), turned a few degrees more each frame and
    padded to ``width`` if given, as an H.264 clip."""
    rgb = np.asarray(Image.open(image).convert("RGB"))[0:256, 96:352]  # the astronaut's face
    rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    w = width or size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, size, "yuv420p"
        for i in range(frames):
            m = cv2.getRotationMatrix2D((size / 2, size / 2), 3.0 * i, 1.0 + 0.02 * i)
            frame = cv2.warpAffine(rgb, m, (size, size), borderMode=cv2.BORDER_REFLECT)
            if w != size:
                frame = cv2.copyMakeBorder(frame, 0, 0, 0, w - size, cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def random_motion(n: int = 5, seed: int = 0) -> DrivingMotion:
    rng = np.random.default_rng(seed)
    f = np.float32
    return DrivingMotion(
        fps=30000 / 1001,
        scale=rng.uniform(1, 2, (n, 1)).astype(f),
        R=rng.normal(size=(n, 3, 3)).astype(f),
        exp=rng.normal(size=(n, 21, 3)).astype(f),
        t=rng.normal(size=(n, 3)).astype(f),
        kp=rng.normal(size=(n, 21, 3)).astype(f),
        x_s=rng.normal(size=(n, 21, 3)).astype(f),
        c_eyes=rng.uniform(0, 0.5, (n, 2)).astype(f),
        c_lip=rng.uniform(0, 0.5, (n, 1)).astype(f),
    )
