"""Masks and paste-back, plus eye/lip ratios and temporal smoothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.face import geometry as G
from pipeline.face import meshidx
from pipeline.face.masks import face_mask, hull_mask, square_feather_mask
from pipeline.face.paste import PasteBack
from pipeline.face.ratios import eye_ratio, lip_ratio
from pipeline.face.smooth import smooth_sequence
from tests.helpers.tolerance import assert_close


def test_square_mask_is_livportraits_template_shape() -> None:
    m = square_feather_mask(512)
    assert m.shape == (512, 512) and m.dtype == np.float32
    assert m[16:497, 16:497].min() == 1.0  # flat inside
    assert m[0, 256] == 0.0 and m[256, 0] == 0.0
    assert m[256, 8] == pytest.approx(0.5)  # linear 16 px ramp
    assert m[0, 0] == 0.0 and 0 < m[10, 10] < m[10, 256]  # rounded corners


def test_face_mask_covers_the_face(lmk) -> None:
    fm = face_mask(lmk, (512, 512))
    nose = np.round(lmk[meshidx.NOSE_TIP]).astype(int)
    mouth = np.round((lmk[13] + lmk[14]) / 2).astype(int)
    eye = np.round(lmk[meshidx.EYE_L_CENTRE].mean(0)).astype(int)
    assert fm[nose[1], nose[0]] > 0.99 and fm[eye[1], eye[0]] > 0.9
    assert fm[mouth[1], mouth[0]] > 0.99
    assert fm[5, 5] == 0.0 and fm[500, 500] == 0.0
    # soft edge: values strictly between 0 and 1 exist, and nothing outside the oval
    assert ((fm > 0.05) & (fm < 0.95)).sum() > 500
    oval = lmk[meshidx.FACE_OVAL]
    assert fm[: int(oval[:, 1].min())].max() == 0.0


def test_paste_back_leaves_outside_of_mask_unchanged(astronaut, lmk) -> None:
    aff = G.liveportrait_crop(lmk)
    crop = np.zeros((512, 512, 3), np.uint8)  # a very different crop
    crop_lmk = aff.apply(lmk)
    mask = face_mask(crop_lmk, (512, 512))
    h, w = astronaut.shape[:2]
    out = PasteBack(aff, (512, 512), (w, h), mask).paste(astronaut, crop)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    back_mask = G.warp(mask, aff.inverse(), 512)
    outside = back_mask == 0
    assert np.array_equal(out[outside], astronaut[outside])
    inside = back_mask > 0.999
    assert inside.sum() > 500 and out[inside].max() <= 1  # fully replaced by the black crop


def test_paste_back_of_unmodified_crop_is_identity(astronaut, lmk) -> None:
    aff = G.liveportrait_crop(lmk)
    crop = G.warp(astronaut, aff, 512)
    pb = PasteBack(aff, (512, 512), (512, 512))
    out = pb.paste(astronaut, crop)
    diff = np.abs(out.astype(int) - astronaut.astype(int))
    assert diff.mean() < 1.5  # interpolation error only (crop is upsampled ~2.4x, then back)
    # only the crop's bounding rectangle is touched
    w, h = pb.rect_size
    assert not pb.empty and w < 300 and h < 300  # the crop covers ~2.3 face widths only
    untouched = np.ones(astronaut.shape[:2], bool)
    untouched[pb.y0:pb.y1, pb.x0:pb.x1] = False
    assert np.array_equal(out[untouched], astronaut[untouched])


def test_paste_back_checks_shapes(astronaut, lmk) -> None:
    pb = PasteBack(G.liveportrait_crop(lmk), (512, 512), (512, 512))
    with pytest.raises(ValueError):
        pb.paste(astronaut, np.zeros((256, 256, 3), np.uint8))


def test_ratios_are_openings_over_widths(lmk, astronaut, landmark_weights_dir) -> None:
    from pipeline.face.landmarks import FaceLandmarker

    lids = FaceLandmarker(landmark_weights_dir).eyelids(astronaut, lmk)  # (2, 16, 2)
    assert lids.shape == (2, 16, 2)
    eyes = eye_ratio(lids, lmk)
    lip = lip_ratio(lmk)
    assert eyes.shape == (2,) and lip.shape == (1,)
    assert 0.15 < eyes[0] < 0.45 and 0.15 < eyes[1] < 0.45  # open eyes
    assert abs(eyes[0] - eyes[1]) < 0.08
    assert 0.05 < lip[0] < 0.5  # smiling with teeth showing: lips apart
    # invariant to scale/rotation/translation of the whole face
    move = G.Affine.similarity(2.5, 0.7, np.array([0.0, 0.0]), np.array([40.0, 90.0]))
    moved_lids = move.apply(lids.reshape(-1, 2)).reshape(2, 16, 2)
    assert_close(eye_ratio(moved_lids, move.apply(lmk)), eyes, ulps=64,
                 what="eye ratio, moved face")
    assert_close(lip_ratio(move.apply(lmk)), lip, ulps=64, what="lip ratio, moved face")
    # closing the mouth: inner lips meet -> 0
    shut = lmk.copy()
    shut[14] = shut[13]
    assert lip_ratio(shut)[0] < 1e-6


def test_smoothing_has_no_lag_and_removes_jitter() -> None:
    t = np.arange(60, dtype=np.float64)
    ramp = np.stack([t, 2 * t], axis=1)[:, None, :]  # (T, 1, 2) moving point
    out = smooth_sequence(ramp, sigma=2.0)
    # centred: a linear motion is kept (to float32 rounding of the positions)
    assert_close(out[8:-8], ramp[8:-8], ulps=8, dtype=np.float32, what="smoothed ramp")
    still = np.tile(np.array([[5.0, 7.0]]), (30, 1, 1))
    assert np.array_equal(smooth_sequence(still, 2.0), still.astype(np.float32))
    noisy = ramp + np.random.default_rng(0).normal(0, 1.0, ramp.shape)
    err_before = np.abs(noisy - ramp)[8:-8].mean()
    err_after = np.abs(smooth_sequence(noisy, 2.0) - ramp)[8:-8].mean()
    assert err_after < 0.5 * err_before


@pytest.mark.parametrize("shift", [(0.0, 0.0), (-200.0, 300.0)])  # inside; partly off the frame
def test_hull_mask_roi_equals_full_frame_computation(lmk, shift) -> None:
    pts = lmk[meshidx.FACE_OVAL].astype(np.float64) + shift
    got = hull_mask(pts, (512, 512), erode_px=5, blur_sigma=3.0)
    ref = np.zeros((512, 512), np.uint8)
    cv2.fillConvexPoly(ref, cv2.convexHull(np.round(pts * 16).astype(np.int32)), 255,
                       lineType=cv2.LINE_AA, shift=4)
    ref = cv2.erode(ref, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    ref = cv2.GaussianBlur(ref.astype(np.float32) / 255, (0, 0), 3.0,
                           borderType=cv2.BORDER_CONSTANT)
    ref[ref < 1 / 255] = 0
    assert got.max() > 0.99
    assert_close(got, ref, ulps=8, what="hull mask")
