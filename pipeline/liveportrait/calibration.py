"""Calibration harness: our face geometry against the official LivePortrait pipeline's.

The official repository ships driving templates (``assets/examples/driving/d1.pkl`` ...) made by
its own pipeline with its 203-point landmark model, and the same clips as videos in its git
history (``d1.mp4`` ...). The templates hold the official per-frame ``c_d_eyes_lst`` and
``c_d_lip_lst``; the clips are framed by the official tooling (see ``pipeline.face.geometry``).

Two steps, so that no video or frame ever has to leave the scratch folder (the authors replaced
the videos by templates to protect the people in them):

1. ``measure``: run our landmarker over a clip and keep only the points the geometry needs
   (``ClipPoints``: FaceMesh points by index, refined eyelids and irises), plus the official ratios;
   ``ClipPoints.save`` writes them as a small ``.npz`` (the committed test fixtures).
2. ``evaluate``: compute our ratios and crop from those points and compare them with the official
   ratios and the clip's framing (``ClipReport``); ``table`` prints them.

Our source crop is compared with official crops of official example images in
``crop_reference`` (``--crops``).

Usage (clips and templates in a scratch folder, never in the repository)::

    python -m pipeline.liveportrait.calibration --weights ~/.local/share/facedrop/weights \\
        --save tests/fixtures/calibration /tmp/calib/d1.mp4 /tmp/calib/d2.mp4 ...

(each ``dN.mp4`` is paired with the ``dN.pkl`` next to it; ``--before`` also prints the
uncalibrated scheme for comparison).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.face.geometry import liveportrait_bbox, liveportrait_rect
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.meshidx import MESH_POINTS
from pipeline.face.ratios import (
    eye_features,
    eye_ratio,
    eye_ratio_mesh,
    lip_ratio,
    raw_lip_ratio,
)

SOURCE_SCALE = 2.3  # liveportrait_rect's default scale (the official source crop's)


@dataclass(frozen=True)
class ClipPoints:
    """One calibration clip reduced to numbers: what the mapping code needs, nothing visual.

    ``mesh`` (N, 468, 2) float64 with NaN for points not kept; ``lids`` (N, 2, 16, 2) refined
    eyelids; ``size`` (width, height) of the clip; ``official_eyes`` (N, 2), ``official_lip``
    (N, 1) from the official template; ``official_scale`` (N,) the official motion extractor's
    face scale on the clip's frames (the template's ``scale``, made on the clip as it is);
    ``iris`` (N, 2, 5, 2) the iris model's iris points (centre, rim), or None in fixtures saved
    before they were kept.
    """

    name: str
    size: tuple[int, int]
    mesh: np.ndarray
    lids: np.ndarray
    official_eyes: np.ndarray
    official_lip: np.ndarray
    official_scale: np.ndarray
    iris: np.ndarray | None = None

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {  # Any: numpy's stub reads **arrays as allow_pickle too
            "name": np.array(self.name), "size": np.array(self.size), "mesh_idx": MESH_POINTS,
            "mesh": self.mesh[:, MESH_POINTS].astype(np.float32),
            "lids": self.lids.astype(np.float32),
            "official_eyes": self.official_eyes.astype(np.float32),
            "official_lip": self.official_lip.astype(np.float32),
            "official_scale": self.official_scale.astype(np.float32)}
        if self.iris is not None:  # fixtures from before the irises were kept have none
            arrays["iris"] = self.iris.astype(np.float32)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> ClipPoints:
        with np.load(path, allow_pickle=False) as z:
            idx = z["mesh_idx"]
            mesh = np.full((z["mesh"].shape[0], 468, 2), np.nan)
            mesh[:, idx] = z["mesh"]
            return cls(str(z["name"]), (int(z["size"][0]), int(z["size"][1])), mesh,
                       z["lids"].astype(np.float64), z["official_eyes"].astype(np.float64),
                       z["official_lip"].astype(np.float64),
                       z["official_scale"].astype(np.float64),
                       z["iris"].astype(np.float64) if "iris" in z.files else None)


def measure(name: str, frames: Iterable[np.ndarray], landmarker: FaceLandmarker,
            official_eyes: np.ndarray, official_lip: np.ndarray,
            official_scale: np.ndarray) -> ClipPoints:
    """Track the face through ``frames`` (RGB) as the driving path does and keep its points."""
    mesh, lids, irises = [], [], []
    prev: np.ndarray | None = None
    size = (0, 0)
    for frame in frames:
        size = (frame.shape[1], frame.shape[0])
        if prev is None:
            prev = landmarker.landmarks(frame, landmarker.detect(frame))
        else:
            prev = landmarker.track(frame, prev)
        mesh.append(prev.astype(np.float64))
        lid, iris = landmarker.eyes(frame, prev)
        lids.append(lid.astype(np.float64))
        irises.append(iris.astype(np.float64))
    n = min(len(mesh), len(official_eyes))
    return ClipPoints(name, size, np.stack(mesh)[:n], np.stack(lids)[:n],
                      np.asarray(official_eyes, np.float64).reshape(-1, 2)[:n],
                      np.asarray(official_lip, np.float64).reshape(-1, 1)[:n],
                      np.asarray(official_scale, np.float64).reshape(-1)[:n],
                      np.stack(irises)[:n])


@dataclass(frozen=True)
class RatioStats:
    """Ours against the official series (per column)."""

    official: np.ndarray  # mean
    ours: np.ndarray  # mean
    bias: np.ndarray  # mean(ours - official)
    corr: np.ndarray  # Pearson; NaN where either side does not move
    mae: np.ndarray  # mean |ours - official|


def ratio_stats(ours: np.ndarray, official: np.ndarray) -> RatioStats:
    ours, official = np.asarray(ours, np.float64), np.asarray(official, np.float64)
    corr = np.array([_corr(ours[:, i], official[:, i]) for i in range(ours.shape[1])])
    return RatioStats(official.mean(0), ours.mean(0), (ours - official).mean(0), corr,
                      np.abs(ours - official).mean(0))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class CropStats:
    """Our driving crop (the boxes averaged over the clip, as the official crop does) against
    the clip's own framing, which is that crop as the official tooling made it.

    ``zoom``: clip width / our box side (1.0: same framing; < 1: ours shows more around the
    face); ``centre``: (our box centre - clip centre) / clip width; ``roll``: mean face roll in
    degrees (the framing itself is unrotated); ``source_zoom``: clip width / our SOURCE crop side;
    ``net_scale``: the official motion extractor's mean face scale on the clip over our mean
    extent (crop side / scale, as a share of the clip width): constant across clips when our
    extent measures face size the way the official network sees it.
    """

    zoom: float
    centre: np.ndarray
    roll: float
    source_zoom: float
    net_scale: float


def crop_stats(points: ClipPoints) -> CropStats:
    boxes = np.stack([liveportrait_bbox(m) for m in points.mesh])
    box = boxes.mean(0)
    w, h = points.size
    side = box[2] - box[0]
    centre = np.array([(box[0] + box[2]) / 2 - w / 2, (box[1] + box[3]) / 2 - h / 2]) / w
    rects = [liveportrait_rect(m) for m in points.mesh]
    source_side = float(np.mean([r[1] for r in rects]))
    roll = float(np.degrees(np.mean([r[2] for r in rects])))
    extent = float(np.mean([r[1] for r in rects])) / SOURCE_SCALE / w
    return CropStats(w / side, centre, roll, w / source_side,
                     float(points.official_scale.mean()) / extent)


@dataclass(frozen=True)
class ClipReport:
    name: str
    eyes: RatioStats
    lip: RatioStats
    crop: CropStats
    lip_closed: float  # our lip ratio's median over the frames the official reads closed


def evaluate(points: ClipPoints, calibrated: bool = True) -> ClipReport:
    """Our ratios and crop from the clip's points against the official ones."""
    if calibrated:
        eyes = np.stack([eye_ratio(lid, m) for lid, m in zip(points.lids, points.mesh,
                                                              strict=True)])
        lips = np.stack([lip_ratio(m) for m in points.mesh])
    else:
        eyes = np.stack([eye_ratio_mesh(m) for m in points.mesh])
        lips = np.stack([raw_lip_ratio(m) for m in points.mesh])
    closed = points.official_lip[:, 0] < 0.01
    lip_closed = float(np.median(lips[closed, 0])) if closed.any() else math.nan
    return ClipReport(points.name, ratio_stats(eyes, points.official_eyes),
                      ratio_stats(lips, points.official_lip), crop_stats(points), lip_closed)


def fit_least_squares(features: Iterable[np.ndarray], targets: Iterable[np.ndarray]
                      ) -> np.ndarray:
    """Coefficients (F + 1,) of ``target = features @ c[:-1] + c[-1]`` by least squares: per
    clip ``features`` (..., F) and ``targets`` (...), each clip weighted equally (so the long
    clips do not drown the short ones); the leading axes (frames, both eyes) are pooled."""
    rows, rhs, weights = [], [], []
    for x, y in zip(features, targets, strict=True):
        x = np.asarray(x, np.float64)
        x2 = x.reshape(-1, x.shape[-1])
        rows.append(np.concatenate([x2, np.ones((len(x2), 1))], 1))
        rhs.append(np.asarray(y, np.float64).ravel())
        weights.append(np.full(len(x2), 1.0 / len(x2)))
    w = np.sqrt(np.concatenate(weights))
    coef: np.ndarray = np.linalg.lstsq(np.concatenate(rows) * w[:, None],
                                       np.concatenate(rhs) * w, rcond=None)[0]
    return coef


def fit_linear(xs: Iterable[np.ndarray], ys: Iterable[np.ndarray]) -> tuple[float, float]:
    """(A, B) of ``y = A x + B`` (``fit_least_squares`` with one feature)."""
    a, b = fit_least_squares((np.asarray(x, np.float64)[..., None] for x in xs), ys)
    return float(a), float(b)


def clip_eye_features(clip: ClipPoints) -> np.ndarray:
    """(T, 2, 3): the eye map's features (``ratios.eye_features``) on each frame of ``clip``."""
    return np.stack([eye_features(lid, m) for lid, m in zip(clip.lids, clip.mesh, strict=True)])


def fit_ratio_maps(clips: Iterable[ClipPoints]
                   ) -> tuple[tuple[float, float, float, float], tuple[float, float]]:
    """The eye map's (EYE_UP, EYE_LOW, EYE_NOSE, EYE_B) and the lip map's (A, B)
    (``pipeline.face.ratios``) fitted on ``clips``."""
    clips = list(clips)
    up, low, nose, b = fit_least_squares([clip_eye_features(c) for c in clips],
                                         [c.official_eyes for c in clips])
    lips = fit_linear([np.stack([raw_lip_ratio(m) for m in c.mesh]) for c in clips],
                      [c.official_lip for c in clips])
    return (float(up), float(low), float(nose), float(b)), lips


def table(reports: Iterable[ClipReport]) -> str:
    """A markdown table of the reports."""
    head = ("| clip | official eye (L, R) | ours (L, R) | corr (L, R) | MAE eye (L, R) "
            "| official lip | ours lip | lip corr | MAE lip | closed-mouth lip | zoom "
            "| centre (x, y) | roll | source zoom | net scale / extent |")
    rows = [head, "|" + "---|" * 15]
    for r in reports:
        e, p, c = r.eyes, r.lip, r.crop
        rows.append(
            f"| {r.name} | {e.official[0]:.3f}, {e.official[1]:.3f} | {e.ours[0]:.3f}, "
            f"{e.ours[1]:.3f} | {e.corr[0]:.2f}, {e.corr[1]:.2f} | {e.mae[0]:.3f}, "
            f"{e.mae[1]:.3f} | {p.official[0]:.3f} | {p.ours[0]:.3f} | {p.corr[0]:.2f} "
            f"| {p.mae[0]:.3f} | {r.lip_closed:.3f} | {c.zoom:.3f} | {c.centre[0]:+.3f}, "
            f"{c.centre[1]:+.3f} | {c.roll:+.1f} | {c.source_zoom:.3f} | {c.net_scale:.3f} |")
    return "\n".join(rows)


def _measure_files(clip: Path, landmarker: FaceLandmarker) -> ClipPoints:
    from pipeline.liveportrait.template import load_template  # only the CLI reads templates
    from pipeline.media.video import iter_frames

    template = load_template(clip.with_suffix(".pkl"))
    if template.c_eyes is None or template.c_lip is None:
        raise SystemExit(f"{clip.with_suffix('.pkl')} carries no eye/lip ratios")
    return measure(clip.stem, iter_frames(clip), landmarker, template.c_eyes, template.c_lip,
                   template.scale)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, help="clip.mp4 (clip.pkl beside it)")
    parser.add_argument("--weights", type=Path, help="weights folder (landmarks/ inside)")
    parser.add_argument("--fixtures", type=Path, nargs="*", default=[],
                        help="read saved ClipPoints .npz instead of measuring clips")
    parser.add_argument("--save", type=Path, help="folder to write <clip>.npz fixtures to")
    parser.add_argument("--before", action="store_true", help="also print the uncalibrated")
    parser.add_argument("--crops", type=Path, nargs="*", default=[],
                        help="saved CropReference .npz to compare our source crop with")
    args = parser.parse_args(argv)
    points = [ClipPoints.load(f) for f in args.fixtures]
    if args.clips:
        if args.weights is None:
            parser.error("--weights is needed to measure clips")
        landmarker = FaceLandmarker(args.weights)
        points += [_measure_files(c, landmarker) for c in args.clips]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for p in points:
            p.save(args.save / f"{p.name}.npz")
    if args.before:
        print("before (FaceMesh lids, uncalibrated):")
        print(table(evaluate(p, calibrated=False) for p in points))
        print()
    print(table(evaluate(p) for p in points))
    if points:
        (up, low, nose, eb), (la, lb) = fit_ratio_maps(points)
        print(f"\nfitted maps: eye UP={up:.4f} LOW={low:.4f} NOSE={nose:.4f} B={eb:.4f}, "
              f"lip A={la:.4f} B={lb:.4f}")
    if args.crops:
        from pipeline.liveportrait.crop_reference import CropReference, crop_table

        print()
        print(crop_table(CropReference.load(p) for p in args.crops))


if __name__ == "__main__":
    main()
