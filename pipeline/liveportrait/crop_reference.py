"""Official LivePortrait source crops of public example images, as references for our crop.

The official repository publishes a few crops its own code made of its example images, with the
settings known from the code of the time: ``assets/docs/inference.gif`` (launch, 2024-07-04:
``crop_single_image`` with scale 2.3, vy -0.15) shows the crop of ``s6.jpg`` as its middle panel;
``assets/docs/editing-portrait-2024-08-06.jpg`` (the Gradio retargeting tab: scale 2.5, vy
-0.125) shows the crop of ``s42.jpg``. The exact crop transform was found once by aligning the
published panel with the image (OpenCV's ECC alignment, affine); ``CropReference`` keeps it with
our FaceMesh points of the image (numbers only); ``crop_agreement`` compares our crop rule with
it. The fitted constants live in ``pipeline.face.geometry`` (``EXTENT_SCALE``, ``EXTENT_SHIFT``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.face.affine import Affine
from pipeline.face.geometry import liveportrait_crop
from pipeline.face.meshidx import MESH_POINTS


@dataclass(frozen=True)
class CropReference:
    """An official source crop of a public official example image: our FaceMesh points on the
    image (``mesh`` (468, 2), NaN for points not kept) and the official crop as found by
    panel alignment (``official``: image -> 512 crop), made with ``scale`` and ``vy_ratio``."""

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


def crop_table(refs: Iterable[CropReference]) -> str:
    rows = ["| official crop | settings | zoom (official / ours) | centre (x, y) | rotation |",
            "|---|---|---|---|---|"]
    for r in refs:
        a = crop_agreement(r)
        rows.append(f"| {r.name} | scale {r.scale:g}, vy {r.vy_ratio:g} | {a.zoom:.3f} "
                    f"| {a.centre[0]:+.3f}, {a.centre[1]:+.3f} | {a.rotation:+.2f} |")
    return "\n".join(rows)
