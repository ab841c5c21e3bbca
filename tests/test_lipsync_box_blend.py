"""Wav2Lip box smoothing (no lag) and the feathered lower-face blend (no seam, exact outside)."""

from __future__ import annotations

import numpy as np

from pipeline.lipsync import box
from pipeline.lipsync.wav2lip import blend
from tests.helpers.tolerance import assert_close


def _official_forward_average(boxes: np.ndarray, t: int = 5) -> np.ndarray:
    """inference.py get_smoothened_boxes, restated: box i = mean of boxes [i, i+T) (last T at the
    end). Used only to show the lag our smoothing removes."""
    out = boxes.copy()
    for i in range(len(boxes)):
        window = boxes[len(boxes) - t:] if i + t > len(boxes) else boxes[i:i + t]
        out[i] = window.mean(axis=0)
    return out


def _moving_boxes(n: int = 40, speed: float = 1.5, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)[:, None]
    true = np.array([150.0, 210.0, 370.0, 440.0]) + speed * t * np.array([1.0, 0.5, 1.0, 0.5])
    return true, true + rng.normal(0, noise, true.shape)


def test_smoothing_has_no_lag_where_the_official_window_runs_ahead() -> None:
    true, raw = _moving_boxes(noise=0.0)
    ours = box.smooth_boxes(raw)
    official = _official_forward_average(raw)
    interior = slice(5, -5)
    # no lag at all: equal to float32 rounding of the coordinates
    assert_close(ours[interior], true[interior], ulps=8, dtype=np.float32, what="boxes")
    # the forward window is 2 frames ahead: 2 * 1.5 px on x for this motion
    assert np.all(official[interior, 0] - true[interior, 0] > 2.9)
    # at the ends the clamp keeps every edge within 2 % of the box height of the measured box
    height = raw[:, 3] - raw[:, 1]
    assert np.all(np.abs(ours - raw) <= box.MAX_SHIFT * height[:, None] + 1e-9)


def test_smoothing_reduces_landmark_jitter() -> None:
    true, raw = _moving_boxes(noise=1.5, seed=4)
    ours = box.smooth_boxes(raw)
    err_raw = np.abs(raw - true)[5:-5].mean()
    err_ours = np.abs(ours - true)[5:-5].mean()
    assert err_ours < 0.75 * err_raw
    # frame-to-frame jumps shrink too
    assert np.abs(np.diff(ours, axis=0)).max() < np.abs(np.diff(raw, axis=0)).max()


def _face_like_landmarks() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """468 points with the jaw on an ellipse and the nostril line across it, in a 512 crop."""
    lmk = np.tile(np.array([[256.0, 300.0]]), (468, 1))
    jaw = blend._OUTLINE[:-5]  # the jaw part of the outline (the last 5 are the nostrils)
    angles = np.linspace(0.15 * np.pi, 0.85 * np.pi, len(jaw))
    lmk[jaw] = np.stack([256 - 100 * np.cos(angles), 320 + 110 * np.sin(angles)], 1)
    lmk[blend._OUTLINE[-5:]] = np.stack([np.linspace(236, 276, 5), np.full(5, 318.0)], 1)
    return lmk.astype(np.float32), (146, 200, 366, 440)


def test_mask_is_zero_at_the_box_edge_and_one_on_the_mouth() -> None:
    lmk, b = _face_like_landmarks()
    m = blend.lower_face_mask(lmk, b)
    assert m.shape == (b[3] - b[1], b[2] - b[0]) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    assert not m[0].any() and not m[-1].any() and not m[:, 0].any() and not m[:, -1].any()
    feather = blend.FEATHER * (b[3] - b[1])
    above_nose = 318 - b[1] - int(np.ceil(feather / 4))
    assert m[:above_nose].max() == 0.0  # nothing above the nose line: upper face untouched
    assert m[above_nose + 2: above_nose + 8, 110].max() > 0.0
    assert m[380 - b[1], 256 - b[0]] == 1.0  # the mouth/chin centre is fully replaced
    # feathered: neighbouring weights never jump by more than the smoothstep's steepest slope
    slope = max(np.abs(np.diff(m, axis=0)).max(), np.abs(np.diff(m, axis=1)).max())
    assert slope <= 1.5 / feather * 1.05 + 1e-6


def test_blend_leaves_pixels_outside_the_mask_bit_exact() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    lmk, b = _face_like_landmarks()
    m = blend.lower_face_mask(lmk, b)
    patch = rng.uniform(0, 255, (b[3] - b[1], b[2] - b[0], 3)).astype(np.float32)
    out = blend.blend(crop, patch, m, b, colour_match=True)
    full = np.zeros((512, 512), np.float32)
    full[b[1]:b[3], b[0]:b[2]] = m
    assert np.array_equal(out[full == 0], crop[full == 0])
    assert np.abs(out[full == 1].astype(int) - crop[full == 1]).mean() > 20
    assert out.dtype == np.uint8 and crop is not out


def test_colour_match_moves_the_patch_mean_to_the_skin_around_it() -> None:
    lmk, b = _face_like_landmarks()
    m = blend.lower_face_mask(lmk, b)
    skin = np.full((b[3] - b[1], b[2] - b[0], 3), (180.0, 140.0, 120.0), np.float32)
    tinted = skin + np.float32(25.0)  # Wav2Lip's output is often a little off in colour
    matched = blend.match_colour(tinted, skin, m)
    np.testing.assert_allclose(matched, skin, atol=1e-2)
