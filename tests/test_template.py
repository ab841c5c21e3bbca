"""Driving templates: official layouts import, our own round-trips, a crafted pickle never runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.liveportrait.template import (
    DrivingMotion,
    load_template,
    motion_to_dict,
    save_template,
)
from tests.helpers.clips import random_motion


def _legacy_dict(m: DrivingMotion) -> dict:
    """The shipped d1/d5 layout: R_d, c_d_* lists, no kp/x_s, int fps."""
    return {
        "n_frames": m.n_frames,
        "output_fps": 30,
        "motion": [
            {"scale": m.scale[i : i + 1], "R_d": m.R[i : i + 1], "exp": m.exp[i : i + 1],
             "t": m.t[i : i + 1]}
            for i in range(m.n_frames)
        ],
        "c_d_eyes_lst": [m.c_eyes[i : i + 1] for i in range(m.n_frames)],
        "c_d_lip_lst": [m.c_lip[i : i + 1] for i in range(m.n_frames)],
    }


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    m = random_motion()
    save_template(m, tmp_path / "a.pkl")
    back = load_template(tmp_path / "a.pkl")
    assert back.n_frames == 5 and back.fps == pytest.approx(30000 / 1001)
    for key in ("scale", "R", "exp", "t", "kp", "x_s", "c_eyes", "c_lip"):
        np.testing.assert_array_equal(getattr(back, key), getattr(m, key))


def test_written_file_has_the_official_current_layout(tmp_path: Path) -> None:
    m = random_motion(3)
    save_template(m, tmp_path / "a.pkl")
    with (tmp_path / "a.pkl").open("rb") as f:
        raw = pickle.load(f)  # our own file, read freely only to inspect its layout
    assert set(raw) == {"n_frames", "output_fps", "motion", "c_eyes_lst", "c_lip_lst"}
    assert raw["n_frames"] == 3 and len(raw["motion"]) == 3
    frame = raw["motion"][1]
    shapes = {k: v.shape for k, v in frame.items()}
    assert shapes == {"scale": (1, 1), "R": (1, 3, 3), "exp": (1, 21, 3), "t": (1, 3),
                      "kp": (1, 21, 3), "x_s": (1, 21, 3)}
    assert all(v.dtype == np.float32 for v in frame.values())
    assert raw["c_eyes_lst"][0].shape == (1, 2) and raw["c_lip_lst"][0].shape == (1, 1)
    np.testing.assert_array_equal(frame["exp"][0], m.exp[1])


def test_legacy_numpy1_template_imports(tmp_path: Path) -> None:
    """R_d / c_d_* keys, and numpy 1.x global names (numpy.core.multiarray), as in d1.pkl."""
    m = random_motion(4, seed=1)
    data = pickle.dumps(_legacy_dict(m), protocol=3)  # protocol 3: globals as text lines
    assert b"cnumpy._core.multiarray\n" in data
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    (tmp_path / "d1.pkl").write_bytes(data)
    back = load_template(tmp_path / "d1.pkl")
    assert back.fps == 30.0 and back.kp is None and back.x_s is None
    np.testing.assert_array_equal(back.R, m.R)
    np.testing.assert_array_equal(back.c_eyes, m.c_eyes)
    np.testing.assert_array_equal(back.c_lip, m.c_lip)


def test_animal_template_without_ratios_and_protocol5(tmp_path: Path) -> None:
    raw = motion_to_dict(random_motion(2))
    del raw["c_eyes_lst"], raw["c_lip_lst"]
    (tmp_path / "laugh.pkl").write_bytes(pickle.dumps(raw, protocol=5))
    back = load_template(tmp_path / "laugh.pkl")
    assert back.c_eyes is None and back.c_lip is None and back.n_frames == 2


class _Payload:
    """Unpickling this calls os.system: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    raw = motion_to_dict(random_motion(2))
    raw["motion"][0]["exp"] = _Payload(marker)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(raw, protocol=4))
    # the payload is live: an unrestricted load would run it
    assert b"system" in evil.read_bytes()
    with pytest.raises(InputError, match="cannot be read safely"):
        load_template(evil)
    assert not marker.exists()


def test_object_arrays_and_wrong_shapes_are_refused(tmp_path: Path) -> None:
    raw = motion_to_dict(random_motion(2))
    raw["motion"][1]["exp"] = np.zeros((1, 20, 3), np.float32)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(InputError, match="layout"):
        load_template(tmp_path / "bad.pkl")
    raw = motion_to_dict(random_motion(2))
    raw["motion"][0]["t"] = np.array([[1, 2, 3]], dtype=object)
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(InputError):
        load_template(tmp_path / "obj.pkl")


def test_truncated_template_is_an_input_error(tmp_path: Path) -> None:
    save_template(random_motion(3), tmp_path / "a.pkl")
    data = (tmp_path / "a.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_template(tmp_path / "cut.pkl")
