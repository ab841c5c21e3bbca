"""Crop geometry: Affine algebra, the LivePortrait crop, the Wav2Lip box, FFHQ alignment."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pipeline.face import geometry as G
from pipeline.face import meshidx
from tests.helpers.tolerance import assert_close

# affine maths in float64 (or float32 landmarks): ulps of the points' magnitude
AFFINE_ULPS = 64


def _blob(shape: tuple[int, int], centre: tuple[float, float], sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return (g * 250).astype(np.float32)


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    w = img.astype(np.float64)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def test_affine_algebra() -> None:
    a = G.Affine.similarity(1.7, 0.3, np.array([10.0, 20.0]), np.array([100.0, 50.0]))
    b = G.Affine(np.array([[0.9, 0.1, 3.0], [-0.2, 1.1, -4.0]]))
    p = np.random.default_rng(0).uniform(-50, 500, (20, 2))
    assert_close(a.inverse().apply(a.apply(p)), p, ulps=AFFINE_ULPS, what="inverse round trip")
    assert np.allclose(a.compose(b).apply(p), a.apply(b.apply(p)))
    assert np.allclose(a.apply([10.0, 20.0]), [100.0, 50.0])
    assert a.scale == pytest.approx(1.7)
    assert a.as_cv2().shape == (2, 3)
    with pytest.raises(ValueError):
        G.Affine(np.full((2, 3), np.nan))
    with pytest.raises(ValueError):
        a.matrix[0, 0] = 2.0  # frozen, read-only


def test_liveportrait_crop_pixel_round_trip_under_half_pixel(astronaut, lmk) -> None:
    """A sub-pixel blob lands where the Affine says, in the crop and back in the image."""
    aff = G.liveportrait_crop(lmk)
    where = (219.3, 131.7)
    img = _blob((512, 512), where, 2.0)
    crop = G.warp(img, aff, 512)
    want = aff.apply(np.array(where))
    assert np.linalg.norm(_centroid(crop) - want) < 0.5
    back = G.warp(crop, aff.inverse(), 512)
    assert np.linalg.norm(_centroid(back) - np.array(where)) < 0.5
    # and the points map exactly both ways
    assert_close(aff.inverse().apply(aff.apply(lmk)), lmk, ulps=AFFINE_ULPS, what="landmarks")


def test_liveportrait_crop_is_level_and_face_sized(lmk) -> None:
    aff = G.liveportrait_crop(lmk, dsize=512, scale=2.3, vy_ratio=-0.125)
    c = aff.apply(lmk)
    eye_l, eye_r = c[meshidx.EYE_L_CENTRE].mean(0), c[meshidx.EYE_R_CENTRE].mean(0)
    lip = (c[meshidx.MOUTH_L] + c[meshidx.MOUTH_R]) / 2
    # official rule: the eye-midpoint -> lip-midpoint axis becomes vertical
    assert abs((eye_l + eye_r)[0] / 2 - lip[0]) < 1e-6
    roll = math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    assert abs(roll) < 3.0  # eyes level (the face's own asymmetry remains)
    # the no-forehead extent, calibrated to the official 106-point one (issue 15: EXTENT_SCALE,
    # EXTENT_SHIFT), is 512/2.3 px on its long side, shifted up by (0.125 - shift) * size
    sub = c[meshidx.INSIGHTFACE_LIKE]
    ext = sub.max(0) - sub.min(0)
    assert max(ext) * G.EXTENT_SCALE == pytest.approx(512 / 2.3, abs=1e-3)
    assert (sub.min(0) + sub.max(0))[1] / 2 == pytest.approx(
        256 + (0.125 - G.EXTENT_SHIFT) * 512, abs=1e-3)
    # plausible framing: whole head inside, eyes a bit above the middle, mouth centred
    assert c.min() > 0 and c.max() < 512
    assert 200 < eye_l[1] < 290 and abs(lip[0] - 256) < 15
    # the hairline (FaceMesh reaches it; InsightFace does not) is above the extent used
    assert c[10, 1] < sub.min(0)[1] - 20


def test_liveportrait_crop_follows_the_face(lmk) -> None:
    """Rotating/scaling/moving the landmarks moves the crop with them (same crop content)."""
    move = G.Affine.similarity(1.6, 0.4, np.array([220.0, 120.0]), np.array([600.0, 300.0]))
    a0 = G.liveportrait_crop(lmk)
    a1 = G.liveportrait_crop(move.apply(lmk))
    p = np.array([[150.0, 80.0], [300.0, 250.0]])
    assert_close(a1.compose(move).apply(p), a0.apply(p), ulps=AFFINE_ULPS, what="moved crop")


def test_network_input_is_2x2_mean(astronaut) -> None:
    small = G.network_input_256(astronaut)
    want = astronaut.astype(np.float64).reshape(256, 2, 256, 2, 3).mean((1, 3))
    assert small.shape == (256, 256, 3)
    assert np.abs(small - want).max() <= 0.5 + 1e-9


def test_wav2lip_box_brows_to_chin_with_bottom_pad(lmk) -> None:
    x1, y1, x2, y2 = G.wav2lip_box(lmk)
    bx1, by1, bx2, by2 = G.wav2lip_box(lmk, pads=(0, 0, 0, 0))
    assert (x1, y1, x2) == (bx1, by1, bx2) and y2 == pytest.approx(by2 + 10)
    mouth = lmk[np.concatenate([meshidx.LIPS_OUTER, meshidx.LIPS_INNER])]
    assert (mouth[:, 0] > x1).all() and (mouth[:, 0] < x2).all()
    assert (mouth[:, 1] > y1).all() and (mouth[:, 1] < y2).all()
    assert lmk[meshidx.CHIN, 1] <= by2 and (lmk[meshidx.JAW, 1] <= by2).all()
    forehead = lmk[[10, 338, 297, 332, 284, 109, 67, 103, 54]]
    assert (forehead[:, 1] < y1).mean() > 0.7  # most of the forehead is outside
    # the mouth sits in the lower half Wav2Lip regenerates; the eyes in the upper half
    mid = (y1 + y2) / 2
    assert mouth[:, 1].min() > mid - 5 and lmk[meshidx.EYE_L_CENTRE, 1].max() < mid
    cx1, cy1, cx2, cy2 = G.wav2lip_box(lmk, pads=(0, 500, 0, 0), image_size=(512, 300))
    assert cy2 == 300.0 and cy1 >= 0


def test_five_points_order(lmk) -> None:
    five = G.five_points(lmk)
    assert five.shape == (5, 2)
    assert five[0, 0] < five[2, 0] < five[1, 0]  # eyes either side of the nose
    assert five[3, 0] < five[4, 0] and five[3, 1] > five[2, 1]  # mouth below the nose


def test_ffhq_align_maps_five_points_near_template(lmk) -> None:
    aff = G.ffhq_align(lmk, size=512)
    got = aff.apply(G.five_points(lmk))
    err = np.linalg.norm(got - G.FFHQ_TEMPLATE_512, axis=1)
    assert err[:2].max() < 10 and err.max() < 20  # a mean-face template, a smiling face
    # same answer as facexlib's call when all points are inliers
    ref, _ = cv2.estimateAffinePartial2D(G.five_points(lmk).astype(np.float32),
                                         G.FFHQ_TEMPLATE_512.astype(np.float32),
                                         method=cv2.LMEDS)
    assert np.abs(ref - aff.matrix).max() < 1e-2
    half = G.ffhq_align(lmk, size=256)
    assert_close(half.apply(lmk), aff.apply(lmk) / 2, ulps=AFFINE_ULPS, what="half size")


def test_similarity_recovers_a_known_transform() -> None:
    true = G.Affine.similarity(0.8, -0.5, np.array([5.0, 7.0]), np.array([30.0, 40.0]))
    src = np.random.default_rng(1).uniform(0, 100, (5, 2))
    est = G.similarity_lstsq(src, true.apply(src))
    assert_close(est.matrix, true.matrix, ulps=AFFINE_ULPS, what="recovered matrix")


def test_driving_bbox_crop_is_unrotated_and_matches_rect(lmk) -> None:
    centre, size, _ = G.liveportrait_rect(lmk, scale=2.2, vy_ratio=-0.1)
    box = G.liveportrait_bbox(lmk)
    assert box[2] - box[0] == pytest.approx(size) and box[3] - box[1] == pytest.approx(size)
    aff = G.bbox_crop(box, 512)
    assert np.allclose(aff.apply(box.reshape(2, 2)), [[0, 0], [512, 512]])
    assert np.allclose(aff.apply(centre), [256, 256])
    assert aff.matrix[0, 1] == 0 and aff.matrix[1, 0] == 0  # no rotation
