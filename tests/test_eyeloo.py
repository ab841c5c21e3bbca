"""Leave-one-out eye-ratio figures over the calibration clips (issue 19, "Eyes in still mode").

The goal was MAE <= 0.03 and correlation >= 0.9 on every clip left out of the fit. The
correlation goal holds for every clip; the MAE goal does not (d1 0.043, d5 0.032, d7 0.033 with
the shipped map; no per-subject normalisation tried does better on all clips, see
``pipeline.liveportrait.eyeloo``). These tests pin the figures the harness prints, so a change
to the landmarks or the map shows here, and prove the harness on data whose answer is known.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.liveportrait.calibration import ClipPoints
from pipeline.liveportrait.eyeloo import (
    MODELS,
    TARGET_CORR,
    leave_one_out,
    main,
    raw_ratios,
)

FIXTURES = Path(__file__).parent / "fixtures" / "calibration"
CLIPS = ("d1", "d2", "d5", "d7")


@pytest.fixture(scope="module")
def clips() -> list[ClipPoints]:
    return [ClipPoints.load(FIXTURES / f"{name}.npz") for name in CLIPS]


def test_held_out_figures_of_the_shipped_map(clips) -> None:
    figures = {h.name: h for h in leave_one_out(clips, "global")}
    for name, h in figures.items():
        moving = clips[CLIPS.index(name)].official_eyes.std(0) >= 0.02
        assert np.all(h.corr[moving] >= TARGET_CORR), (name, h.corr)  # the shape follows
        assert h.mae.max() <= 0.045, (name, h.mae)
    assert figures["d2"].meets_target()
    # the held-out d5 reads too open, as issue 19 reports (here +0.025 and +0.028)
    assert np.all(figures["d5"].bias > 0.02)
    # d1 (16 frames): a wink the iris model does not follow, the worst case
    assert max(figures, key=lambda n: figures[n].mae.max()) == "d1"


def test_normalising_by_the_subjects_open_level_alone_does_worse(clips) -> None:
    plain = {h.name: h.mae.mean() for h in leave_one_out(clips, "global")}
    alone = {h.name: h.mae.mean() for h in leave_one_out(clips, "open-level")}
    assert sum(alone.values()) > sum(plain.values())
    assert alone["d7"] > 0.1  # d7's open eyes read ~0.55 officially, the others ~0.33


def test_a_map_the_data_follows_exactly_is_found_on_every_held_out_clip(clips) -> None:
    """The harness itself: official ratios made from ours by a known map come back exactly."""
    exact = [replace(c, official_eyes=1.3 * raw_ratios(c) - 0.02)
             for c in clips]
    for h in leave_one_out(exact, "global"):
        assert h.mae.max() < 1e-9 and h.meets_target(), h


def test_the_command_prints_every_model_and_clip(clips, capsys) -> None:
    main([str(FIXTURES / f"{name}.npz") for name in CLIPS])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "clip" not in line]
    assert len(rows) == len(MODELS) * len(CLIPS)
    assert "| global | d5 | 148 | 0.027, 0.032 | 0.94, 0.95 | +0.025, +0.028 | no |" in out
