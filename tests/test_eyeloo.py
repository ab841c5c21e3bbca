"""Leave-one-out eye-ratio figures over the calibration clips (issue 19, "Eyes in still mode").

The goal was MAE <= 0.03 and correlation >= 0.9 on every clip left out of the fit. The
correlation goal holds for every clip; the MAE goal holds on d2 only, with the shipped map (the
lid heights: d1 0.034/0.037, d5 0.019/0.031, d7 0.038/0.027) as with the earlier one (the mid-lid
ratio: d1 0.043/0.040, d5 0.027/0.032, d7 0.033/0.026). Fitted on each clip itself, the
lid-heights map meets the goal everywhere: what is missing is a per-subject correction that
three clips can teach (see ``pipeline.liveportrait.eyeloo``). These tests pin the figures the
harness prints, so a change to the landmarks or the map shows here, and prove the harness and
``lid_heights`` on data whose answer is known.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.face.affine import Affine
from pipeline.face.ratios import lid_heights
from pipeline.liveportrait.calibration import ClipPoints
from pipeline.liveportrait.eyeloo import (
    MODELS,
    TARGET_CORR,
    heights,
    leave_one_out,
    main,
    raw_ratios,
    winks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "calibration"
CLIPS = ("d1", "d2", "d5", "d7")


@pytest.fixture(scope="module")
def clips() -> list[ClipPoints]:
    return [ClipPoints.load(FIXTURES / f"{name}.npz") for name in CLIPS]


def _mean_mae(figures) -> float:
    return float(np.mean([h.mae.mean() for h in figures]))


def test_held_out_figures_of_the_shipped_map(clips) -> None:
    figures = {h.name: h for h in leave_one_out(clips, "lid-heights")}
    for name, h in figures.items():
        moving = clips[CLIPS.index(name)].official_eyes.std(0) >= 0.02
        assert np.all(h.corr[moving] >= TARGET_CORR), (name, h.corr)  # the shape follows
        assert h.mae.max() <= 0.04, (name, h.mae)
    assert figures["d2"].meets_target()
    # the held-out d5 no longer reads ~0.03 too open (the mid-lid ratio: +0.025, +0.028)
    assert np.all(np.abs(figures["d5"].bias) < 0.015), figures["d5"].bias


def test_the_lid_heights_beat_the_mid_lid_ratio_held_out(clips) -> None:
    """The extra parameter earns its place on clips left out of the fit: lower mean and worst
    MAE (0.0265 and 0.038 against 0.0280 and 0.043)."""
    shipped, former = leave_one_out(clips, "lid-heights"), leave_one_out(clips, "global")
    assert _mean_mae(shipped) < _mean_mae(former) - 0.001
    assert max(h.mae.max() for h in shipped) < max(h.mae.max() for h in former) - 0.003


def test_fitted_on_itself_every_clip_meets_the_goal(clips) -> None:
    """What is left held out is a difference between people, not noise no map can follow: a
    per-subject map of the lid heights would meet the goal on every clip; the mid-lid ratio's
    would not on d1 (its wink)."""
    assert all(h.meets_target() for h in leave_one_out(clips, "lid-heights", own=True))
    own_raw = {h.name: h for h in leave_one_out(clips, "global", own=True)}
    assert not own_raw["d1"].meets_target()
    assert own_raw["d1"].mae.max() > 0.03


def test_winks_are_the_frames_with_one_eye_shut(clips) -> None:
    counts = {c.name: int(winks(c).sum()) for c in clips}
    assert counts == {"d1": 4, "d2": 0, "d5": 0, "d7": 22}
    d7 = leave_one_out(clips, "global", skip_winks=True)[CLIPS.index("d7")]
    assert d7.frames == 178 - 22 and d7.meets_target()  # d7's miss is its winks


def test_normalising_by_the_subjects_open_level_alone_does_worse(clips) -> None:
    plain = {h.name: h.mae.mean() for h in leave_one_out(clips, "global")}
    alone = {h.name: h.mae.mean() for h in leave_one_out(clips, "open-level")}
    assert sum(alone.values()) > sum(plain.values())
    assert alone["d7"] > 0.1  # d7's open eyes read ~0.55 officially, the others ~0.33


@pytest.mark.parametrize("model", ["global", "lid-heights"])
def test_a_map_the_data_follows_exactly_is_found_on_every_held_out_clip(clips, model) -> None:
    """The harness itself: official ratios made from ours by a known map come back exactly."""
    exact = [replace(c, official_eyes=MODELS[model](c) @ np.linspace(1.3, 0.9, 1 + (
        model != "global")) - 0.02) for c in clips]
    for h in leave_one_out(exact, model):
        assert h.mae.max() < 1e-9 and h.meets_target(), h


def _outline(upper: float, lower: float) -> np.ndarray:
    """A 16-point eyelid outline 10 wide (corners at x 0 and 10, y 0), the lids as arcs whose
    highest / lowest points sit ``upper`` and ``lower`` from the corner line (image y is down)."""
    low_x, up_x = np.linspace(0, 10, 9), np.linspace(0, 10, 9)[1:-1]
    lower_lid = np.stack([low_x, lower * 10 * np.sin(np.pi * low_x / 10)], 1)
    upper_lid = np.stack([up_x, -upper * 10 * np.sin(np.pi * up_x / 10)], 1)
    return np.concatenate([lower_lid, upper_lid])


def test_lid_heights_read_both_lids_from_the_corner_line() -> None:
    left = _outline(0.25, 0.12)
    right = left * [-1, 1] + [60, 0]  # mirrored: outer corner (point 0) on the image right
    h = lid_heights(np.stack([left, right]))
    np.testing.assert_allclose(h, [[0.25, 0.12], [0.25, 0.12]], rtol=1e-6)  # +1e-6 width
    # an upper lid dropped below the corner line reads negative: its highest point is then the
    # one next to a corner (x 1.25 of 10)
    shut = lid_heights(np.stack([_outline(-0.04, 0.08), right]))
    assert shut[0, 0] == pytest.approx(-0.04 * np.sin(np.pi / 8)) and shut[0, 0] < 0
    assert shut[0, 1] == pytest.approx(0.08)
    # unchanged by moving, turning and scaling the face
    move = Affine.similarity(2.5, 0.7, np.array([0.0, 0.0]), np.array([40.0, 90.0]))
    moved = move.apply(np.stack([left, right]).reshape(-1, 2)).reshape(2, 16, 2)
    np.testing.assert_allclose(lid_heights(moved), h, rtol=1e-6)


def test_features_have_one_row_per_frame_and_eye(clips) -> None:
    d2 = clips[CLIPS.index("d2")]
    assert raw_ratios(d2).shape == (16, 2) and heights(d2).shape == (16, 2, 2)
    for model, feats in MODELS.items():
        assert feats(d2).shape[:2] == (16, 2), model


def test_the_command_prints_every_model_and_clip(clips, capsys) -> None:
    main([str(FIXTURES / f"{name}.npz") for name in CLIPS])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "clip" not in line]
    assert len(rows) == len(MODELS) * len(CLIPS)
    assert "| global | d5 | 148 | 0.027, 0.032 | 0.94, 0.95 | +0.025, +0.028 | no |" in out
    assert "| lid-heights | d5 | 148 | 0.019, 0.031 | 0.96, 0.91 | +0.008, +0.011 | no |" in out
    main([str(FIXTURES / f"{name}.npz") for name in CLIPS] + ["--own", "--model", "global"])
    assert "| global | d1 | 16 | 0.035, 0.021 |" in capsys.readouterr().out
