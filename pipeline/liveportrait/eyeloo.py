"""Leave-one-out check of the eye-ratio map: fit on all calibration clips but one, measure the
one left out, for each clip in turn (issue 19, "Eyes in still mode").

A map is a linear model over per-frame features of our raw eye ratio (``pipeline.face.ratios.
raw_eye_ratio``), fitted by least squares with each clip weighted equally (as ``calibration.
fit_linear``) and clamped at 0. The models compared:

- ``global``: ``A * raw + B``, the shipped map (``ratios.EYE_A``, ``EYE_B``);
- ``open-level``: the ratio over the subject's own open-eye level (the clip's 90th percentile,
  per eye), ``A * raw / level + B``: per-subject normalisation alone;
- ``level+shape``: ``A * raw + C * level + B``: the level as a separate term;
- ``hinge``: ``A * raw + C * max(0, raw / level - 0.57) * level + B``: below 57% of the
  subject's open level the eye is closing, and the map may steepen there (relative to the
  subject, so a narrow-eyed person is not read as closing).

Usage (the committed fixtures, numbers only)::

    python -m pipeline.liveportrait.eyeloo tests/fixtures/calibration/d*.npz
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.face.ratios import raw_eye_ratio
from pipeline.liveportrait.calibration import ClipPoints

OPEN_LEVEL_PERCENTILE = 90.0
HINGE_SHARE = 0.57  # 0.2 of an open level of 0.35 (the calibration clips' typical one)
TARGET_MAE, TARGET_CORR = 0.03, 0.9  # issue 19's goal for a clip left out of the fit
MOVING_STD = 0.02  # an eye whose official ratio moves less has no meaningful correlation

Features = Callable[[np.ndarray], np.ndarray]  # (T, 2) raw -> (T, 2, F)


def _level(raw: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.percentile(raw, OPEN_LEVEL_PERCENTILE, axis=0), raw.shape)


MODELS: dict[str, Features] = {
    "global": lambda raw: raw[..., None],
    "open-level": lambda raw: (raw / _level(raw))[..., None],
    "level+shape": lambda raw: np.stack([raw, _level(raw)], -1),
    "hinge": lambda raw: np.stack(
        [raw, np.maximum(0.0, raw / _level(raw) - HINGE_SHARE) * _level(raw)], -1),
}


@dataclass(frozen=True)
class HeldOut:
    """One clip's figures under a map fitted without it (per eye: image-left, image-right)."""

    name: str
    frames: int
    mae: np.ndarray
    corr: np.ndarray  # NaN where the official eye does not move (std < MOVING_STD)
    bias: np.ndarray

    def meets_target(self) -> bool:
        corr_ok = all(math.isnan(c) or c >= TARGET_CORR for c in self.corr)
        return bool(np.all(self.mae <= TARGET_MAE)) and corr_ok


def raw_ratios(clip: ClipPoints) -> np.ndarray:
    return np.stack([raw_eye_ratio(lids) for lids in clip.lids])


def fit(features: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
    """Coefficients (F + 1,) of ``target = features @ c[:-1] + c[-1]``, clips weighted equally."""
    rows, rhs, weights = [], [], []
    for x, y in zip(features, targets, strict=True):
        x2 = x.reshape(-1, x.shape[-1])
        rows.append(np.concatenate([x2, np.ones((len(x2), 1))], 1))
        rhs.append(np.asarray(y, np.float64).ravel())
        weights.append(np.full(len(x2), 1.0 / len(x2)))
    w = np.sqrt(np.concatenate(weights))
    return np.linalg.lstsq(np.concatenate(rows) * w[:, None], np.concatenate(rhs) * w,
                           rcond=None)[0]


def predict(coef: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.maximum(features @ coef[:-1] + coef[-1], 0.0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if b.std() < MOVING_STD or a.std() < 1e-9:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def leave_one_out(clips: Sequence[ClipPoints], model: str = "global") -> list[HeldOut]:
    """Each clip's figures under ``model`` fitted on the other clips."""
    feats = MODELS[model]
    xs = [feats(raw_ratios(c)) for c in clips]
    out = []
    for i, clip in enumerate(clips):
        coef = fit([x for j, x in enumerate(xs) if j != i],
                   [c.official_eyes for j, c in enumerate(clips) if j != i])
        pred, official = predict(coef, xs[i]), clip.official_eyes
        out.append(HeldOut(clip.name, len(pred), np.abs(pred - official).mean(0),
                           np.array([_corr(pred[:, e], official[:, e]) for e in (0, 1)]),
                           (pred - official).mean(0)))
    return out


def table(clips: Sequence[ClipPoints], models: Sequence[str] = tuple(MODELS)) -> str:
    """A markdown table: per model and held-out clip, MAE, correlation and bias per eye."""
    rows = ["| model | held-out clip | frames | MAE (L, R) | corr (L, R) | bias (L, R) "
            f"| MAE <= {TARGET_MAE} and corr >= {TARGET_CORR} |", "|---|---|---|---|---|---|---|"]
    for model in models:
        for h in leave_one_out(clips, model):
            rows.append(f"| {model} | {h.name} | {h.frames} | {h.mae[0]:.3f}, {h.mae[1]:.3f} "
                        f"| {h.corr[0]:.2f}, {h.corr[1]:.2f} | {h.bias[0]:+.3f}, "
                        f"{h.bias[1]:+.3f} | {'yes' if h.meets_target() else 'no'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixtures", nargs="+", type=Path, help="ClipPoints .npz files")
    parser.add_argument("--model", choices=sorted(MODELS), action="append",
                        help="models to compare (default: all)")
    args = parser.parse_args(argv)
    clips = [ClipPoints.load(p) for p in args.fixtures]
    print(table(clips, args.model or tuple(MODELS)))


if __name__ == "__main__":
    main()
