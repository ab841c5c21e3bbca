"""Official LivePortrait source crops of public example images, as references for our crop.

The official repository publishes a few crops its own code made of its example images, with the
settings known from the code of the time: ``assets/docs/inference.gif`` (launch, 2024-07-04:
``crop_single_image`` with scale 2.3, vy -0.15) shows the crop of ``s6.jpg`` as its middle panel;
``assets/docs/editing-portrait-2024-08-06.jpg`` (the Gradio retargeting tab: scale 2.5, vy
-0.125) shows the crop of ``s42.jpg``. ``register_crop`` finds the exact crop transform by aligning
the published panel with the image; ``CropReference`` keeps it with our FaceMesh points of the
image (numbers only); ``crop_agreement`` compares our crop rule with it. The fitted constants
live in ``pipeline.face.geometry`` (``EXTENT_SCALE``, ``EXTENT_SHIFT``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.face.affine import Affine
from pipeline.face.geometry import liveportrait_crop
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.meshidx import MESH_POINTS


@dataclass(frozen=True)
class CropReference:
    """An official source crop of a public official example image: our FaceMesh points on the
    image (``mesh`` (468, 2), NaN for points not kept) and the official crop as found by
    ``register_crop`` (``official``: image -> 512 crop), made with ``scale`` and ``vy_ratio``."""

    name: str
    mesh: np.ndarray
    official: Affine
    scale: float
    vy_ratio: float

    def save(self, path: Path) -> None:
        np.savez_compressed(path, name=self.name, mesh_idx=MESH_POINTS,
                            mesh=self.mesh[MESH_POINTS].astype(np.float32),
                            official=self.official.matrix, scale=self.scale,
                            vy_ratio=self.vy_ratio)

    @classmethod
    def load(cls, path: Path) -> CropReference:
        with np.load(path, allow_pickle=False) as z:
            mesh = np.full((468, 2), np.nan)
            mesh[z["mesh_idx"]] = z["mesh"]
            return cls(str(z["name"]), mesh, Affine(z["official"]), float(z["scale"]),
                       float(z["vy_ratio"]))


@dataclass(frozen=True)
class CropAgreement:
    """Our crop against the official one of the same image: ``zoom`` official / our scale (1:
    same; < 1: the official crop shows more around the face), ``centre`` where the official
    crop's centre lies in ours, as a share of the crop side, ``rotation`` in degrees."""

    zoom: float
    centre: np.ndarray
    rotation: float


def crop_agreement(ref: CropReference, dsize: int = 512) -> CropAgreement:
    ours = liveportrait_crop(ref.mesh, dsize, ref.scale, 0.0, ref.vy_ratio)
    mid = np.array([dsize / 2, dsize / 2])
    centre = (ours.apply(ref.official.inverse().apply(mid)) - mid) / dsize
    a, b = ref.official.matrix, ours.matrix
    rotation = math.degrees(math.atan2(a[1, 0], a[0, 0]) - math.atan2(b[1, 0], b[0, 0]))
    return CropAgreement(ref.official.scale / ours.scale, centre, rotation)


def register_crop(image: np.ndarray, shown: np.ndarray, guess: Affine,
                  dsize: int = 512) -> tuple[Affine, float]:
    """The official crop (image -> ``dsize`` crop) that ``shown`` displays, and the match's
    correlation: ``shown`` is that crop as published (e.g. a panel cut out of an official GIF
    or screenshot, square, any size), ``guess`` our crop of the same image. Found by OpenCV's
    ECC image alignment (affine, so a non-similarity shows up as unequal singular values)."""
    import cv2  # only the dev harness registers images

    n = shown.shape[0]
    s = n / dsize
    to_shown = Affine(np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]]))  # resize
    warp = to_shown.compose(guess).inverse().matrix.astype(np.float32)  # shown -> image
    template = cv2.cvtColor(shown, cv2.COLOR_RGB2GRAY).astype(np.float32)
    source = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 500, 1e-7)
    everywhere = np.full(source.shape, 255, np.uint8)  # input mask: all of the image counts
    cc, found = cv2.findTransformECC(template, source, warp, cv2.MOTION_AFFINE, criteria,
                                     everywhere, 5)
    return to_shown.inverse().compose(Affine(np.asarray(found)).inverse()), float(cc)


def measure_reference(name: str, image: np.ndarray, shown: np.ndarray,
                      landmarker: FaceLandmarker, scale: float,
                      vy_ratio: float) -> tuple[CropReference, float]:
    """Our points on ``image`` and the official crop ``shown`` of it, registered (see the module
    docstring for the published panels and their settings); also the match's correlation
    (0.99 for s6, 0.98 for s42: a failed match reads far lower)."""
    lmk = landmarker.landmarks(image, landmarker.detect(image)).astype(np.float64)
    official, cc = register_crop(image, shown, liveportrait_crop(lmk, 512, scale, 0.0, vy_ratio))
    return CropReference(name, lmk, official, scale, vy_ratio), cc


def crop_table(refs: Iterable[CropReference]) -> str:
    rows = ["| official crop | settings | zoom (official / ours) | centre (x, y) | rotation |",
            "|---|---|---|---|---|"]
    for r in refs:
        a = crop_agreement(r)
        rows.append(f"| {r.name} | scale {r.scale:g}, vy {r.vy_ratio:g} | {a.zoom:.3f} "
                    f"| {a.centre[0]:+.3f}, {a.centre[1]:+.3f} | {a.rotation:+.2f} |")
    return "\n".join(rows)
