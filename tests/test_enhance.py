"""The enhance stage on a real crop of the astronaut photo, with random GFPGAN weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.enhance import Enhancer, gfpgan_from_checkpoint
from pipeline.enhance.stage import blend, smooth_landmarks
from pipeline.face import meshidx
from pipeline.face.geometry import ffhq_align, liveportrait_crop, warp
from pipeline.face.landmarks import FaceLandmarker
from tests.helpers.gfpgan_checkpoints import random_gfpgan_state_dict

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def crop_and_landmarks(astronaut_path: Path, landmark_weights_dir: Path
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The LivePortrait 512 crop of the photo and its landmarks in crop pixels."""
    rgb = np.asarray(Image.open(astronaut_path).convert("RGB"))
    finder = FaceLandmarker(landmark_weights_dir)
    lmk = finder.landmarks(rgb, finder.detect(rgb))
    affine = liveportrait_crop(lmk)
    return warp(rgb, affine, 512), affine.apply(lmk)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return gfpgan_from_checkpoint({"params_ema": random_gfpgan_state_dict(seed=2)}, CPU,
                                  torch.float32)


def _face_region(lmk: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    """Boolean mask of the face oval's hull, grown by ``margin`` px."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(lmk[meshidx.FACE_OVAL]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.dilate(mask, kernel).astype(bool)


def test_strength_zero_returns_the_input_exactly(crop_and_landmarks, net) -> None:
    crop, lmk = crop_and_landmarks
    out = Enhancer(net, CPU, torch.float32, strength=0.0, batch_size=2).enhance([crop], [lmk])
    assert len(out) == 1 and out[0] is not crop
    np.testing.assert_array_equal(out[0], crop)


def test_restores_inside_the_face_only(crop_and_landmarks, net) -> None:
    crop, lmk = crop_and_landmarks
    enhancer = Enhancer(net, CPU, torch.float32, strength=0.7, batch_size=2)
    out = enhancer.enhance([crop, crop], [lmk, lmk])  # one batch of two
    assert len(out) == 2
    for frame in out:
        assert frame.shape == crop.shape and frame.dtype == np.uint8
    np.testing.assert_array_equal(out[0], out[1])  # batched samples do not mix
    face = _face_region(lmk, crop.shape[:2], margin=2)
    outside = ~face
    np.testing.assert_array_equal(out[0][outside], crop[outside])
    diff = np.abs(out[0].astype(np.int16) - crop.astype(np.int16)).max(axis=2)
    assert face.mean() > 0.05  # the face is a real part of the crop
    assert (diff[face] > 0).mean() > 0.5 and diff[face].mean() > 5.0


def test_blend_weight_endpoints() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    restored = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(blend(crop, restored, np.zeros((8, 8))), crop)
    np.testing.assert_array_equal(blend(crop, restored, np.ones((8, 8))), restored)
    half = blend(crop, restored, np.full((8, 8), 0.5)).astype(np.float32)
    mid = (crop.astype(np.float32) + restored) / 2
    assert np.abs(half - mid).max() <= 0.5


def test_smoothed_alignment_does_not_jump(crop_and_landmarks) -> None:
    """Per-frame landmark jitter of about 1 px moves the raw FFHQ alignment every frame;
    the smoothed alignment moves far less, with no lag."""
    _, lmk = crop_and_landmarks
    rng = np.random.default_rng(1)
    frames = [lmk + rng.normal(0, 1.0, lmk.shape) for _ in range(40)]

    def mean_step(seq: list[np.ndarray]) -> float:
        ms = [ffhq_align(p).matrix for p in seq]
        return float(np.mean([np.abs(b - a).max() for a, b in zip(ms, ms[1:], strict=False)]))

    smoothed = list(smooth_landmarks(np.stack(frames)))
    assert mean_step(smoothed[5:]) < 0.6 * mean_step(frames[5:])
    # zero lag: a still face stays exactly where it is, at the ends too
    still = np.stack([lmk] * 12)
    np.testing.assert_array_equal(smooth_landmarks(still), still.astype(np.float32))


def test_alignment_puts_the_face_on_the_ffhq_template(crop_and_landmarks) -> None:
    """GFPGAN sees the face where FFHQ faces are: the 5 points land on the template."""
    from pipeline.face.geometry import FFHQ_TEMPLATE_512, five_points

    _, lmk = crop_and_landmarks
    smoothed = lmk
    moved = ffhq_align(smoothed).apply(five_points(smoothed))
    # A least-squares similarity of 5 points: the eyes land within a few px; the astronaut smiles,
    # so her mouth corners sit wider and higher than the template's (about 13 px here).
    err = np.abs(moved - FFHQ_TEMPLATE_512)
    assert err[:2].max() < 8.0 and err.max() < 20.0
    assert abs(moved[0, 1] - moved[1, 1]) < 3.0  # eyes level
