"""Leave-one-out eye-ratio figures over the calibration clips (issue 19, "Eyes in still mode").

The goal: MAE <= 0.03 and correlation >= 0.9 on every clip left out of the fit, both eyes. Over
the five official clips (d1, d2, d5, d7, d8) it is met on d2 only. The shipped map (lid heights
plus the nose drop) reads held out: d1 0.031/0.025, d2 0.019/0.013, d5 0.017/0.026, d7
0.035/0.036, d8 0.038/0.029 (the lid heights alone: d8 0.059/0.045, ~0.05 too open, d1
0.038/0.045, d7 0.043/0.041). Correlation: every eye >= 0.9 but d8's image-right eye (0.84,
official std 0.04: it barely moves) and d5's image-right eye (0.8997). Fitted on each clip
itself, the shipped map meets the goal everywhere (d8 just: 0.91/0.90). These tests pin the
figures the harness prints, so a change to the landmarks or the map shows here, and prove the
harness, ``lid_heights``, ``nose_drop`` and the iris geometry on data whose answer is known.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.face import ratios
from pipeline.face.affine import Affine
from pipeline.face.ratios import lid_heights, nose_drop
from pipeline.liveportrait.calibration import ClipPoints
from pipeline.liveportrait.eyeloo import (
    MODELS,
    PER_CLIP,
    PER_FRAME,
    SHIPPED,
    TARGET_CORR,
    heights,
    iris_geometry,
    leave_one_out,
    main,
    raw_ratios,
    winks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "calibration"
CLIPS = ("d1", "d2", "d5", "d7", "d8")
IRIS_MODELS = ("heights+iris-size", "iris-heights", "heights+iris-centre", "lids-at-iris",
               "heights+iris-cover", "heights+nose+iris-size")


@pytest.fixture(scope="module")
def clips() -> list[ClipPoints]:
    return [ClipPoints.load(FIXTURES / f"{name}.npz") for name in CLIPS]


def _mean_mae(figures) -> float:
    return float(np.mean([h.mae.mean() for h in figures]))


def _worst_mae(figures) -> float:
    return float(max(h.mae.max() for h in figures))


def test_held_out_figures_of_the_shipped_map(clips) -> None:
    figures = {h.name: h for h in leave_one_out(clips, SHIPPED)}
    for name, h in figures.items():
        moving = clips[CLIPS.index(name)].official_eyes.std(0) >= 0.02
        floor = np.array([0.9, 0.83 if name == "d8" else 0.89])  # d8, d5: image-right eye
        assert np.all(h.corr[moving] >= floor[moving]), (name, h.corr)  # the shape follows
        assert h.mae.max() <= 0.04, (name, h.mae)
    assert figures["d2"].meets_target()
    assert not figures["d8"].meets_target()  # the goal is not met: d8 0.038, corr 0.84
    # the held-out d8 no longer reads ~0.05 too open (the lid heights alone: +0.058, +0.045)
    assert np.all(np.abs(figures["d8"].bias) < 0.035), figures["d8"].bias


def test_the_nose_drop_beats_the_lid_heights_alone_held_out(clips) -> None:
    """Mean and worst held-out MAE 0.0268 and 0.038 against 0.0350 and 0.059; and not only
    thanks to d8: over the four clips without it, worst 0.032 against 0.038."""
    shipped, former = leave_one_out(clips, SHIPPED), leave_one_out(clips, "lid-heights")
    assert _mean_mae(shipped) < _mean_mae(former) - 0.006
    assert _worst_mae(shipped) < _worst_mae(former) - 0.015
    four = [c for c in clips if c.name != "d8"]
    assert _worst_mae(leave_one_out(four, SHIPPED)) < _worst_mae(
        leave_one_out(four, "lid-heights")) - 0.004


def test_the_lid_heights_beat_the_mid_lid_ratio_held_out(clips) -> None:
    """Mean and worst MAE 0.0350 and 0.059 against 0.0365 and 0.062."""
    lids, former = leave_one_out(clips, "lid-heights"), leave_one_out(clips, "global")
    assert _mean_mae(lids) < _mean_mae(former) - 0.001
    assert _worst_mae(lids) < _worst_mae(former) - 0.002


def test_no_iris_feature_helps_held_out(clips) -> None:
    """The iris (its size, its centre's height, the lids at its centre, the share of it the lids
    leave visible) carries no more of the difference between people than the lid heights do:
    every iris model's worst held-out MAE is above the shipped map's (0.042 at best, with the
    nose drop; 0.050 without it, against 0.038), and the one that gains on it gains little."""
    worst = _worst_mae(leave_one_out(clips, SHIPPED))
    for model in IRIS_MODELS:
        assert _worst_mae(leave_one_out(clips, model)) > worst + 0.003, model
    # the best alternative: the lids where the iris centre is, on top of the shipped map, gain
    # 0.003 on the worst clip (0.035) for two more parameters, and the goal stays missed
    best = leave_one_out(clips, "heights+nose+lids-at-iris")
    assert worst - 0.005 < _worst_mae(best) < worst
    assert not all(h.meets_target() for h in best)


def test_fitted_on_itself_every_clip_meets_the_goal(clips) -> None:
    """What is left held out is a difference between people, not noise no map can follow: a
    per-subject map of the shipped features would meet the goal on every clip; the lid heights'
    would not on d8 (image-right correlation 0.89), the mid-lid ratio's not on d1 (its wink)."""
    assert all(h.meets_target() for h in leave_one_out(clips, SHIPPED, own=True))
    own_lids = {h.name: h for h in leave_one_out(clips, "lid-heights", own=True)}
    assert not own_lids["d8"].meets_target() and own_lids["d8"].corr[1] < TARGET_CORR
    own_raw = {h.name: h for h in leave_one_out(clips, "global", own=True)}
    assert not own_raw["d1"].meets_target()
    assert own_raw["d1"].mae.max() > 0.03


def test_winks_are_the_frames_with_one_eye_shut(clips) -> None:
    counts = {c.name: int(winks(c).sum()) for c in clips}
    assert counts == {"d1": 4, "d2": 0, "d5": 0, "d7": 22, "d8": 4}
    d1 = leave_one_out(clips, SHIPPED, skip_winks=True)[CLIPS.index("d1")]
    assert d1.frames == 16 - 4 and d1.meets_target()  # d1's miss is its winks


def test_normalising_by_the_subjects_open_level_alone_does_worse(clips) -> None:
    plain = {h.name: h.mae.mean() for h in leave_one_out(clips, "global")}
    alone = {h.name: h.mae.mean() for h in leave_one_out(clips, "open-level")}
    assert sum(alone.values()) > sum(plain.values())
    assert alone["d7"] > 0.1  # d7's open eyes read ~0.55 officially, the others ~0.33


@pytest.mark.parametrize("model", PER_FRAME)
def test_a_map_the_data_follows_exactly_is_found_on_every_held_out_clip(clips, model) -> None:
    """The harness itself: official ratios made from ours by a known map come back exactly."""
    n = MODELS[model](clips[0]).shape[-1]
    exact = [replace(c, official_eyes=MODELS[model](c) @ np.linspace(1.3, 0.9, n) + 0.5)
             for c in clips]
    for h in leave_one_out(exact, model):
        assert h.mae.max() < 1e-9 and h.meets_target(), h


def _outline(upper: float, lower: float) -> np.ndarray:
    """A 16-point eyelid outline 10 wide (corners at x 0 and 10, y 0), the lids as arcs whose
    highest / lowest points sit ``upper`` and ``lower`` from the corner line (image y is down)."""
    low_x, up_x = np.linspace(0, 10, 9), np.linspace(0, 10, 9)[1:-1]
    lower_lid = np.stack([low_x, lower * 10 * np.sin(np.pi * low_x / 10)], 1)
    upper_lid = np.stack([up_x, -upper * 10 * np.sin(np.pi * up_x / 10)], 1)
    return np.concatenate([lower_lid, upper_lid])


def _mirror(points: np.ndarray) -> np.ndarray:
    """The image-right eye: mirrored, its outer corner (point 0) on the image right."""
    return points * [-1, 1] + [60, 0]


def test_lid_heights_read_both_lids_from_the_corner_line() -> None:
    left = _outline(0.25, 0.12)
    h = lid_heights(np.stack([left, _mirror(left)]))
    np.testing.assert_allclose(h, [[0.25, 0.12], [0.25, 0.12]], rtol=1e-6)  # +1e-6 width
    # an upper lid dropped below the corner line reads negative: its highest point is then the
    # one next to a corner (x 1.25 of 10)
    shut = lid_heights(np.stack([_outline(-0.04, 0.08), _mirror(left)]))
    assert shut[0, 0] == pytest.approx(-0.04 * np.sin(np.pi / 8)) and shut[0, 0] < 0
    assert shut[0, 1] == pytest.approx(0.08)
    # unchanged by moving, turning and scaling the face
    move = Affine.similarity(2.5, 0.7, np.array([0.0, 0.0]), np.array([40.0, 90.0]))
    moved = move.apply(np.stack([left, _mirror(left)]).reshape(-1, 2)).reshape(2, 16, 2)
    np.testing.assert_allclose(lid_heights(moved), h, rtol=1e-6)


def _face(drop: float) -> np.ndarray:
    """468 points (NaN but the outer eye corners 33, 263, 10 apart, and the nose tip 1, ``drop``
    eye-corner distances below their line's middle)."""
    lmk = np.full((468, 2), np.nan)
    lmk[33], lmk[263], lmk[1] = [0.0, 0.0], [10.0, 0.0], [5.0, 10 * drop]
    return lmk


def test_the_nose_drop_is_read_from_the_outer_eye_corners_and_clamped() -> None:
    assert nose_drop(_face(0.45)) == pytest.approx(0.45)
    move = Affine.similarity(2.5, 0.7, np.array([0.0, 0.0]), np.array([40.0, 90.0]))
    assert nose_drop(move.apply(_face(0.45))) == pytest.approx(0.45)
    # outside the calibrated range the map does not extrapolate
    low, high = ratios.NOSE_DROP_RANGE
    assert nose_drop(_face(0.1)) == low and nose_drop(_face(0.9)) == high
    # the same lids read less open on a face whose nose tip sits lower (a head tipped forward)
    lids = np.stack([_outline(0.25, 0.12), _mirror(_outline(0.25, 0.12))])
    level, tipped = ratios.eye_ratio(lids, _face(0.42)), ratios.eye_ratio(lids, _face(0.52))
    np.testing.assert_allclose(level - tipped, -0.1 * ratios.EYE_NOSE, rtol=1e-5)
    assert np.all(tipped < level)


def test_iris_geometry_reads_a_known_iris() -> None:
    """An iris 4.4 across (0.44 eye widths) centred 0.3 above the corner line's middle, on both
    eyes (the image-right one mirrored), with the lid arcs of ``_outline``."""
    left_lids = _outline(0.25, 0.12)
    rim = np.array([[2.2, 0.0], [0.0, -2.2], [-2.2, 0.0], [0.0, 2.2]])  # right, top, left, bottom
    left_iris = np.concatenate([[[5.0, -0.3]], [5.0, -0.3] + rim])
    clip = ClipPoints("known", (64, 64), np.zeros((1, 468, 2)),
                      np.stack([left_lids, _mirror(left_lids)])[None], np.zeros((1, 2)),
                      np.zeros((1, 1)), np.ones(1),
                      np.stack([left_iris, _mirror(left_iris)])[None])
    g = iris_geometry(clip)
    np.testing.assert_allclose(g.diameter, [[0.44, 0.44]], rtol=1e-5)
    np.testing.assert_allclose(g.centre, [[0.03, 0.03]], rtol=1e-5)
    # the lids' arcs peak above / below the iris centre (x 5 of 10)
    np.testing.assert_allclose(g.upper_at, [[0.25, 0.25]], rtol=1e-5)
    np.testing.assert_allclose(g.lower_at, [[0.12, 0.12]], rtol=1e-5)
    with pytest.raises(ValueError, match="no iris"):
        iris_geometry(replace(clip, iris=None))


def test_features_have_one_row_per_frame_and_eye(clips) -> None:
    d2 = clips[CLIPS.index("d2")]
    assert raw_ratios(d2).shape == (16, 2) and heights(d2).shape == (16, 2, 2)
    for model, feats in MODELS.items():
        assert feats(d2).shape[:2] == (16, 2), model
    assert set(PER_FRAME) | set(PER_CLIP) == set(MODELS) and SHIPPED in PER_FRAME


def test_the_command_prints_every_model_and_clip(clips, capsys) -> None:
    main([str(FIXTURES / f"{name}.npz") for name in CLIPS])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "clip" not in line
            and "kind" not in line and "per " not in line]
    assert len(rows) == len(MODELS) * len(CLIPS)
    assert "| heights+nose | d8 | 275 | 0.038, 0.029 | 0.92, 0.84 | +0.034, +0.021 | no |" in out
    assert "| lid-heights | d8 | 275 | 0.059, 0.045 | 0.91, 0.85 | +0.058, +0.045 | no |" in out
    assert "| heights+nose | per frame | 0.0268 | 0.038 | 0.84 | 1 of 5: d2 |" in out
    main([str(FIXTURES / f"{name}.npz") for name in CLIPS] + ["--own", "--model", SHIPPED])
    out = capsys.readouterr().out
    assert "| heights+nose | d8 | 275 | 0.018, 0.016 | 0.91, 0.90 |" in out
    assert "5 of 5: d1, d2, d5, d7, d8 |" in out
