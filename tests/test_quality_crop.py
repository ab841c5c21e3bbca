"""SyncNet face crops: the official pad-and-slice arithmetic, placed by landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.face.geometry import wav2lip_box
from pipeline.quality.crop import LazyCrops, crop_face, crop_tracks


def official_crop(image: np.ndarray, s: float, x: float, y: float) -> np.ndarray:
    """run_pipeline.py crop_video's arithmetic for one frame (crop_scale 0.4)."""
    cs = 0.4
    bsi = int(s * (1 + 2 * cs))
    frame = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    rows = slice(int(my - s), int(my + s * (1 + 2 * cs)))
    face = frame[rows, int(mx - s * (1 + cs)):int(mx + s * (1 + cs))]
    return cv2.resize(face, (224, 224))


@pytest.mark.parametrize("s,x,y", [(40.0, 80.0, 60.0), (33.3, 5.5, 110.2), (70.0, 150.0, 20.0),
                                   (25.7, 100.4, 100.9)])
def test_crop_is_the_official_slice(s: float, x: float, y: float) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_face(image, s, x, y), official_crop(image, s, x, y))


def test_tracks_are_median_smoothed_s3fd_like_boxes(lmk: np.ndarray) -> None:
    t = 20
    marks = np.repeat(np.asarray(lmk, np.float64)[None, :, :2], t, axis=0)
    x1, y1, x2, y2 = wav2lip_box(marks[0], pads=(0, 0, 0, 0))
    expected = [max(x2 - x1, y2 - y1) / 2, (x1 + x2) / 2, (y1 + y2) / 2]
    marks[7] += 25.0  # one wild frame: the median filter removes it
    marks[9] = (marks[9] - marks[9].mean(0)) * 2 + marks[9].mean(0)  # one far too large box
    tracks = crop_tracks(marks)
    assert tracks.shape == (t, 3)
    np.testing.assert_allclose(tracks[6:14], np.tile(expected, (8, 1)))
    # the official crop (rows y - s .. y + 1.8 s) holds the whole box, the mouth about mid-height
    s, _, y = expected
    lips_y = float(np.asarray(lmk)[[13, 14], 1].mean())
    assert 0.4 < (lips_y - (y - s)) / (2.8 * s) < 0.7
    assert (y1 - (y - s)) / (2.8 * s) > 0.0 and (y2 - (y - s)) / (2.8 * s) < 1.0


def test_crops_are_bgr_and_224(lmk: np.ndarray) -> None:
    frame = np.zeros((512, 512, 3), np.uint8)
    frame[..., 0] = 200  # red in RGB
    marks = np.repeat(np.asarray(lmk, np.float64)[None, :, :2], 3, axis=0)
    crops = list(LazyCrops([frame] * 3, marks))
    assert len(crops) == 3 and crops[0].shape == (224, 224, 3)
    assert crops[1][112, 112].tolist() == [0, 0, 200]
