"""Leave-one-out check of the eye-ratio map: fit on all calibration clips but one, measure the
one left out, for each clip in turn (issue 19, "Eyes in still mode").

A map is a linear model over per-frame features of our eyelid outline, fitted by least squares
with each clip weighted equally (``calibration.fit_least_squares``) and clamped at 0. The models
compared (per frame: usable on a single photo; per clip: they need the subject's other frames,
which a photo does not have):

- ``global`` (per frame): ``A * raw + B`` on the mid-lid ratio (``ratios.raw_eye_ratio``), the
  map shipped until issue 19;
- ``lid-heights`` (per frame): ``UP * upper + LOW * lower + B`` on the upper lid's height above
  the corner line and the lower lid's depth below it (``ratios.lid_heights``), the shipped map;
- ``open-level`` (per clip): the raw ratio over the subject's own open-eye level (the clip's
  90th percentile, per eye), ``A * raw / level + B``: per-subject normalisation alone;
- ``level+shape`` (per clip): ``A * raw + C * level + B``: the level as a separate term;
- ``hinge`` (per clip): ``A * raw + C * max(0, raw / level - 0.57) * level + B``: below 57% of
  the subject's open level the eye is closing, and the map may steepen there;
- ``heights+median`` (per clip): ``lid-heights`` plus the clip's median upper-lid height.

Two further views say what no map over these features can reach: ``--own`` fits each clip on
itself (the best any per-subject affine normalisation could do), ``--skip-winks`` leaves out of
the measure the frames where one eye is shut and the other open (official ratios 0.15 or more
apart), which the iris model does not follow.

Usage (the committed fixtures, numbers only)::

    python -m pipeline.liveportrait.eyeloo tests/fixtures/calibration/d*.npz [--own] [--skip-winks]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.face.ratios import lid_heights, raw_eye_ratio
from pipeline.liveportrait.calibration import ClipPoints, fit_least_squares

OPEN_LEVEL_PERCENTILE = 90.0
HINGE_SHARE = 0.57  # 0.2 of an open level of 0.35 (the calibration clips' typical one)
TARGET_MAE, TARGET_CORR = 0.03, 0.9  # issue 19's goal for a clip left out of the fit
MOVING_STD = 0.02  # an eye whose official ratio moves less has no meaningful correlation
WINK_GAP = 0.15  # official ratios this far apart: one eye shut, the other open

Features = Callable[[ClipPoints], np.ndarray]  # clip -> (T, 2, F)


def raw_ratios(clip: ClipPoints) -> np.ndarray:
    return np.stack([raw_eye_ratio(lids) for lids in clip.lids])


def heights(clip: ClipPoints) -> np.ndarray:
    return np.stack([lid_heights(lids) for lids in clip.lids])


def _level(x: np.ndarray, percentile: float = OPEN_LEVEL_PERCENTILE) -> np.ndarray:
    return np.broadcast_to(np.percentile(x, percentile, axis=0), x.shape)


def _open_level(clip: ClipPoints) -> np.ndarray:
    raw = raw_ratios(clip)
    return (raw / _level(raw))[..., None]


def _level_shape(clip: ClipPoints) -> np.ndarray:
    raw = raw_ratios(clip)
    return np.stack([raw, _level(raw)], -1)


def _hinge(clip: ClipPoints) -> np.ndarray:
    raw = raw_ratios(clip)
    level = _level(raw)
    return np.stack([raw, np.maximum(0.0, raw / level - HINGE_SHARE) * level], -1)


def _heights_median(clip: ClipPoints) -> np.ndarray:
    h = heights(clip)
    return np.concatenate([h, _level(h[..., 0], 50.0)[..., None]], -1)


MODELS: dict[str, Features] = {
    "global": lambda clip: raw_ratios(clip)[..., None],
    "lid-heights": heights,
    "open-level": _open_level,
    "level+shape": _level_shape,
    "hinge": _hinge,
    "heights+median": _heights_median,
}
PER_FRAME = ("global", "lid-heights")  # the models a single photo can use


@dataclass(frozen=True)
class HeldOut:
    """One clip's figures under a map (per eye: image-left, image-right)."""

    name: str
    frames: int
    mae: np.ndarray
    corr: np.ndarray  # NaN where the official eye does not move (std < MOVING_STD)
    bias: np.ndarray

    def meets_target(self) -> bool:
        corr_ok = all(math.isnan(c) or c >= TARGET_CORR for c in self.corr)
        return bool(np.all(self.mae <= TARGET_MAE)) and corr_ok


def predict(coef: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.maximum(features @ coef[:-1] + coef[-1], 0.0)


def winks(clip: ClipPoints) -> np.ndarray:
    """(T,) bool: frames where the official template reads one eye shut and the other open."""
    return np.abs(clip.official_eyes[:, 0] - clip.official_eyes[:, 1]) >= WINK_GAP


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if b.std() < MOVING_STD or a.std() < 1e-9:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _figures(clip: ClipPoints, pred: np.ndarray, skip_winks: bool) -> HeldOut:
    keep = ~winks(clip) if skip_winks else np.ones(len(pred), bool)
    pred, official = pred[keep], clip.official_eyes[keep]
    return HeldOut(clip.name, len(pred), np.abs(pred - official).mean(0),
                   np.array([_corr(pred[:, e], official[:, e]) for e in (0, 1)]),
                   (pred - official).mean(0))


def leave_one_out(clips: Sequence[ClipPoints], model: str = "global", *, own: bool = False,
                  skip_winks: bool = False) -> list[HeldOut]:
    """Each clip's figures under ``model`` fitted on the other clips (``own``: on itself);
    ``skip_winks``: wink frames are left out of the figures (never out of the fit)."""
    feats = MODELS[model]
    xs = [feats(c) for c in clips]
    out = []
    for i, clip in enumerate(clips):
        fitted = [i] if own else [j for j in range(len(clips)) if j != i]
        coef = fit_least_squares([xs[j] for j in fitted], [clips[j].official_eyes for j in fitted])
        out.append(_figures(clip, predict(coef, xs[i]), skip_winks))
    return out


def table(clips: Sequence[ClipPoints], models: Sequence[str] = tuple(MODELS), *,
          own: bool = False, skip_winks: bool = False) -> str:
    """A markdown table: per model and measured clip, MAE, correlation and bias per eye."""
    fit = "own fit" if own else "held-out"
    rows = [f"| model | {fit} clip | frames | MAE (L, R) | corr (L, R) | bias (L, R) "
            f"| MAE <= {TARGET_MAE} and corr >= {TARGET_CORR} |", "|---|---|---|---|---|---|---|"]
    for model in models:
        for h in leave_one_out(clips, model, own=own, skip_winks=skip_winks):
            rows.append(f"| {model} | {h.name} | {h.frames} | {h.mae[0]:.3f}, {h.mae[1]:.3f} "
                        f"| {h.corr[0]:.2f}, {h.corr[1]:.2f} | {h.bias[0]:+.3f}, "
                        f"{h.bias[1]:+.3f} | {'yes' if h.meets_target() else 'no'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixtures", nargs="+", type=Path, help="ClipPoints .npz files")
    parser.add_argument("--model", choices=sorted(MODELS), action="append",
                        help="models to compare (default: all)")
    parser.add_argument("--own", action="store_true",
                        help="fit each clip on itself (the best per-subject normalisation)")
    parser.add_argument("--skip-winks", action="store_true",
                        help="leave frames with one eye shut and one open out of the figures")
    args = parser.parse_args(argv)
    clips = [ClipPoints.load(p) for p in args.fixtures]
    print(table(clips, args.model or tuple(MODELS), own=args.own, skip_winks=args.skip_winks))


if __name__ == "__main__":
    main()
