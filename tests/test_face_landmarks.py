"""BlazeFace + FaceMesh on LiteRT, on the real astronaut photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import NoFaceError, WeightsError
from pipeline.face import blazeface, meshidx
from pipeline.face.affine import Affine, warp
from pipeline.face.geometry import five_points
from pipeline.face.landmarks import FaceLandmarker

# Hand-read from 8x zooms of astronaut.png (pixel-centre coordinates, +-1 px reading error):
# eye centres (corners/lids), nose tip (pronasale highlight), outer mouth corners.
HAND_EYE_L = (202.5, 101.0)
HAND_EYE_R = (247.0, 103.5)
HAND_NOSE = (223.5, 127.5)
HAND_MOUTH_L = (203.0, 140.0)
HAND_MOUTH_R = (243.5, 140.5)
HAND_CHIN_Y = 173.0  # lowest point of the chin outline


@pytest.fixture(scope="module")
def landmarker(landmark_weights_dir: Path) -> FaceLandmarker:
    return FaceLandmarker(landmark_weights_dir)


@pytest.fixture(scope="module")
def lmk(landmarker: FaceLandmarker, astronaut: np.ndarray) -> np.ndarray:
    return landmarker.landmarks(astronaut, landmarker.detect(astronaut))


def test_anchor_grids_match_model_outputs() -> None:
    short = blazeface.make_anchors(blazeface.SHORT_RANGE)
    full = blazeface.make_anchors(blazeface.FULL_RANGE_SPARSE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # first grid: stride 8 -> 16x16 cells, 2 anchors each, centred in the cell
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8])  # stride-16 grid starts after 512
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])


def test_detects_one_face_with_keypoints(landmarker: FaceLandmarker, astronaut) -> None:
    box = landmarker.detect(astronaut)
    assert box.score > 0.8
    assert 80 < box.width < 110 and 80 < box.height < 110
    assert box.x1 < HAND_EYE_L[0] < HAND_EYE_R[0] < box.x2
    assert box.y1 < HAND_EYE_L[1] < HAND_MOUTH_L[1] < box.y2
    # keypoints 0/1 are the eyes (image left first), 2 nose, 3 mouth centre
    assert np.linalg.norm(box.keypoints[0] - HAND_EYE_L) < 6
    assert np.linalg.norm(box.keypoints[1] - HAND_EYE_R) < 6
    assert np.linalg.norm(box.keypoints[2] - HAND_NOSE) < 6


def test_landmarks_match_hand_checked_points(lmk: np.ndarray) -> None:
    assert lmk.shape == (468, 2) and lmk.dtype == np.float32
    five = five_points(lmk)
    for got, want, tol in [(five[0], HAND_EYE_L, 3), (five[1], HAND_EYE_R, 3),
                           (five[2], HAND_NOSE, 3), (five[3], HAND_MOUTH_L, 4),
                           (five[4], HAND_MOUTH_R, 4)]:
        assert np.linalg.norm(got - np.array(want)) < tol, (got, want)
    assert abs(lmk[meshidx.CHIN, 1] - HAND_CHIN_Y) < 4


def test_track_agrees_with_detection(landmarker, astronaut, lmk) -> None:
    tracked = landmarker.track(astronaut, lmk)
    assert np.linalg.norm(tracked - lmk, axis=1).mean() < 1.5


def test_rotated_face_gives_rotated_landmarks(landmarker, astronaut, lmk) -> None:
    """The rotated ROI is what makes tilted heads work: landmarks must rotate with the image."""
    rot = Affine(cv2.getRotationMatrix2D((224.0, 128.0), 25.0, 1.0))
    rotated = warp(astronaut, rot, 512, border=cv2.BORDER_REPLICATE)
    got = landmarker.landmarks(rotated, landmarker.detect(rotated))
    err = np.linalg.norm(got - rot.apply(lmk), axis=1)
    assert err.mean() < 2.0
    tracked = landmarker.track(rotated, rot.apply(lmk))
    assert np.linalg.norm(tracked - rot.apply(lmk), axis=1).mean() < 2.0


def test_upscaled_photo_scales_landmarks(landmarker, astronaut, lmk) -> None:
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    got = landmarker.landmarks(big, landmarker.detect(big))
    # pixel centres: x_big = 2 * x + 0.5
    assert np.linalg.norm(got - (2 * lmk + 0.5), axis=1).mean() < 3.0


def test_blank_image_has_no_face(landmarker) -> None:
    with pytest.raises(NoFaceError, match="No face"):
        landmarker.detect(np.full((256, 256, 3), 128, np.uint8))


def test_tiny_face_is_refused(landmarker, astronaut) -> None:
    tiny = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceError, match="too small") as info:
        landmarker.detect(tiny)
    assert info.value.fix


@pytest.mark.parametrize("cut", ["left", "top", "bottom"])
def test_face_cut_off_by_edge_is_refused(landmarker, astronaut, cut: str) -> None:
    part = {"left": astronaut[:, 205:], "top": astronaut[112:], "bottom": astronaut[:140]}[cut]
    with pytest.raises(NoFaceError, match="cut off"):
        landmarker.detect(np.ascontiguousarray(part))


def test_missing_model_is_a_weights_error(tmp_path: Path, astronaut) -> None:
    fl = FaceLandmarker(tmp_path)  # constructing loads nothing
    with pytest.raises(WeightsError) as info:
        fl.detect(astronaut)
    assert "weights fetch" in info.value.fix


def test_full_range_model_finds_a_face_short_range_misses(landmarker, astronaut, lmk) -> None:
    """In a wide frame the face is ~9 px at the short-range model's 128 px input: the
    full-range model (192 px, stride 4 anchors) must take over and decode correctly."""
    wide = np.ascontiguousarray(np.pad(astronaut, ((0, 0), (400, 400), (0, 0)), mode="edge"))
    assert landmarker._detect_all(wide, "face_detection_short_range.tflite",
                                  blazeface.SHORT_RANGE) == []
    box = landmarker.detect(wide)
    assert box.x1 < HAND_EYE_L[0] + 400 < HAND_EYE_R[0] + 400 < box.x2
    got = landmarker.landmarks(wide, box)
    assert np.linalg.norm(got - (lmk + [400, 0]), axis=1).mean() < 1.5
