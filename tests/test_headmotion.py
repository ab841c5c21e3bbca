"""Head-motion figures of quality.json (issue 19): pose from landmarks, range and speed, blinks,
the calm/lively word, the pose strip, and the figures on the official driving clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.ratios import raw_eye_ratio
from pipeline.liveportrait.calibration import ClipPoints
from pipeline.quality import headmotion
from pipeline.quality.eyes import CropEyes
from pipeline.quality.headmotion import (
    LIVELY_SPEED_DEG_S,
    MAX_BLINK_S,
    MODEL,
    MODEL_POINTS,
    count_blinks,
    head_motion,
    head_pose,
    rotation,
)
from pipeline.quality.posestrip import STRIP_H, pose_strip, with_pose_strip
from pipeline.quality.report import quality_report

FPS = 25.0
FIXTURES = Path(__file__).parent / "fixtures" / "calibration"


def landmarks_of(angles: np.ndarray, scale: float = 12.0, noise: float = 0.0,
                 seed: int = 0) -> np.ndarray:
    """(T, 468, 2) landmarks: the model's points seen at the given (T, 3) yaw/pitch/roll,
    projected (scaled orthographic) into a frame and moved around; the others stay 0."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(angles), 468, 2))
    for t, (yaw, pitch, roll) in enumerate(angles):
        pts = (MODEL @ rotation(yaw, pitch, roll).T)[:, :2] * scale
        out[t, MODEL_POINTS] = pts + [320 + 0.5 * t, 240] + rng.normal(0, noise, pts.shape)
    return out


def sway(seconds: float, amplitude: float, hz: float, axis: int) -> np.ndarray:
    t = np.arange(int(seconds * FPS)) / FPS
    angles = np.zeros((len(t), 3))
    angles[:, axis] = amplitude * np.sin(2 * np.pi * hz * t)
    return angles


def test_pose_is_recovered_from_landmarks_at_known_angles() -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform([-35, -25, -30], [35, 25, 30], (40, 3))
    assert np.abs(head_pose(landmarks_of(angles)) - angles).max() < 1e-6
    # with landmark noise (0.3 px on a face ~200 px tall) the angles stay within a few degrees
    noisy = head_pose(landmarks_of(angles, noise=0.3))
    assert np.abs(noisy - angles).mean() < 1.0 and np.abs(noisy - angles).max() < 5.0


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_range_and_speed_of_a_known_sway(axis: int) -> None:
    amplitude, hz = 10.0, 0.5
    motion = head_motion(landmarks_of(sway(8.0, amplitude, hz, axis), noise=0.2), FPS)
    # 5th-95th percentile of a sine: 2 A sin(0.45 pi); its mean |rate|: 4 A f
    expect_range = 2 * amplitude * np.sin(0.45 * np.pi)
    assert motion.range_deg[axis] == pytest.approx(expect_range, rel=0.05)
    assert motion.speed_deg_s[axis] == pytest.approx(4 * amplitude * hz, rel=0.1)
    others = [a for a in range(3) if a != axis]
    assert np.all(motion.range_deg[others] < 1.0) and np.all(motion.speed_deg_s[others] < 2.0)
    assert motion.head_speed == pytest.approx(4 * amplitude * hz, rel=0.1)


def eye_series(seconds: float, blinks_at: list[float], closed_s: float = 0.15,
               seed: int = 0) -> np.ndarray:
    """(T, 2) raw eye ratios: open ~0.33 with jitter, closed ~0.08 for ``closed_s`` at each
    time in ``blinks_at``, with a one-frame half-way step either side."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    r = 0.33 + rng.normal(0, 0.008, (n, 2))
    for start in blinks_at:
        a, b = int(start * FPS), int((start + closed_s) * FPS)
        r[a - 1] = r[b] = 0.2
        r[a:b] = 0.08 + rng.normal(0, 0.005, (b - a, 2))
    return r


def test_known_blinks_are_counted_per_minute() -> None:
    times = [0.7, 3.1, 4.0, 8.9, 12.2, 12.9, 17.5, 19.0]  # irregular, two close together
    ratios = eye_series(20.0, times)
    motion = head_motion(landmarks_of(np.zeros((len(ratios), 3))), FPS, ratios)
    assert motion.blinks == len(times)
    assert motion.blinks_per_minute == pytest.approx(len(times) * 3.0)  # 20 s of video
    # eyes shut for longer than a blink are a pause, not a blink; no eye ratios, no count
    long_shut = eye_series(10.0, [2.0, 6.0], closed_s=MAX_BLINK_S + 0.5)
    assert count_blinks(long_shut.mean(1), FPS) == 0
    assert head_motion(landmarks_of(np.zeros((10, 3))), FPS).blinks is None
    # relative to the subject's own open level: narrow eyes that never close count nothing
    assert count_blinks(np.full(200, 0.15) + np.random.default_rng(2).normal(0, 0.005, 200),
                        FPS) == 0


def test_the_calm_lively_word_flips_across_the_threshold() -> None:
    hz = 0.5  # mean speed of a yaw sine: 4 A f = 2 A deg/s
    below = LIVELY_SPEED_DEG_S / 2 * 0.85
    above = LIVELY_SPEED_DEG_S / 2 * 1.15
    calm = head_motion(landmarks_of(sway(8.0, below, hz, 0)), FPS)
    lively = head_motion(landmarks_of(sway(8.0, above, hz, 0)), FPS)
    assert calm.head_speed < LIVELY_SPEED_DEG_S < lively.head_speed
    assert calm.word == "calm" and lively.word == "lively"
    assert calm.as_dict()["word"] == "calm" and lively.as_dict()["word"] == "lively"
    # a slow but wide turn is lively too
    wide = head_motion(landmarks_of(sway(20.0, headmotion.LIVELY_RANGE_DEG, 0.05, 0)), FPS)
    assert wide.head_speed < LIVELY_SPEED_DEG_S and wide.word == "lively"


def test_quality_report_carries_the_figures() -> None:
    n = 50
    frames = [np.zeros((8, 8, 3), np.uint8)] * n
    lmk = landmarks_of(sway(2.0, 4.0, 1.0, 1))
    report = quality_report(frames, lmk, [True] * n, np.zeros(32000, np.float32),
                            syncnet=None, eye_ratios=eye_series(2.0, [1.0]))
    data = report.as_dict()["head_motion"]
    assert data["blinks"] == 1 and data["blinks_per_minute"] == 30.0
    assert data["range_deg"]["pitch"] > 5 and data["thresholds"]["lively_speed_deg_per_s"] == (
        LIVELY_SPEED_DEG_S)


def test_the_pose_strip_draws_three_curves() -> None:
    motion = head_motion(landmarks_of(sway(4.0, 8.0, 0.5, 0) + sway(4.0, 5.0, 1.0, 2)), FPS)
    strip = pose_strip(motion, 400)
    assert strip.shape == (STRIP_H, 400, 3) and strip.dtype == np.uint8
    reddish = (strip[20:, :, 0].astype(int) - strip[20:, :, 2]) > 80  # yaw's colour
    bluish = (strip[20:, :, 2].astype(int) - strip[20:, :, 0]) > 80  # roll's colour
    assert reddish.sum() > 300 and bluish.sum() > 300
    sheet = np.zeros((200, 400, 3), np.uint8)
    assert with_pose_strip(sheet, motion).shape == (200 + STRIP_H, 400, 3)
    assert with_pose_strip(sheet, None) is sheet


def test_the_official_driving_clips() -> None:
    """Real landmarks: our blink count against the official eye ratios' on the calibration
    clips, and the talking clips read calm (the module docstring quotes these figures)."""
    for name, official_blinks in (("d5", 2), ("d7", 4)):
        clip = ClipPoints.load(FIXTURES / f"{name}.npz")
        assert count_blinks(clip.official_eyes.mean(1), FPS) == official_blinks
        eyes = np.stack([raw_eye_ratio(lids) for lids in clip.lids])
        motion = head_motion(clip.mesh, FPS, eyes)
        assert abs(motion.blinks - official_blinks) <= 1, name
        assert motion.word == "calm" and motion.head_speed < 8.0, (name, motion.head_speed)


def test_job_eyes_run_once_per_distinct_crop(landmark_weights_dir: Path, astronaut: np.ndarray,
                                             lmk: np.ndarray) -> None:
    landmarker = FaceLandmarker(landmark_weights_dir)
    calls = []

    def counting() -> FaceLandmarker:
        calls.append(1)
        return landmarker

    eyes = CropEyes(counting, [lmk, lmk])
    for crop in (0, 0, 1, 0, 1, 1):
        eyes.see(crop, astronaut)
    assert len(calls) == 2 and set(eyes.ratios) == {0, 1}
    series = eyes.series([0, 1, 1, 0])
    assert series is not None and series.shape == (4, 2)
    assert 0.2 < series.mean() < 0.6  # the astronaut's eyes are open
    assert eyes.series([0, 2]) is None  # a crop never seen: no count rather than a guess
    broken = CropEyes(lambda: FaceLandmarker(Path("/nonexistent")), [lmk])
    broken.see(0, astronaut)  # the iris model is missing: no exception, no count
    assert broken.failed and broken.series([0]) is None
