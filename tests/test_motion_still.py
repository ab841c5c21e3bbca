"""``still`` motion by its behaviour over a minute (no render needed), and the motion amount."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.liveportrait.generated import motion_sha256
from pipeline.liveportrait.motion import LIP_KEYPOINTS, SourceKeypoints, posed_keypoints
from pipeline.motion.amount import MotionAmount, rotation_power, scale_motion
from pipeline.motion.still import HEAD_DEGREES, StillMotion, still_motion
from tests.helpers.voice_motion import EnvelopeVoice

FPS = 25.0
MINUTE = int(60 * FPS)
EYES = np.array([0.31, 0.29])


def blinks(openness: np.ndarray) -> np.ndarray:
    """The frames where the eyes start to read less than half open."""
    shut = openness < 0.5
    return np.flatnonzero(shut[1:] & ~shut[:-1]) + 1


@pytest.fixture(scope="module")
def minutes() -> list[StillMotion]:
    return [still_motion(MINUTE, FPS, seed, EYES) for seed in range(8)]


def test_blinks_come_at_a_natural_rate_and_irregularly(minutes: list[StillMotion]) -> None:
    for still in minutes:
        starts = blinks(still.openness)
        assert 8 <= len(starts) <= 30  # blinks per minute of people at rest and talking
        gaps = np.diff(starts) / FPS
        assert gaps.min() >= 1.2 and gaps.std() > 0.4  # never a metronome
        # the blinks are what eye retargeting reads: the ratio itself dips, then comes back
        ratio = still.motion.c_eyes
        assert ratio is not None
        assert np.array_equal(blinks(ratio[:, 0] / EYES[0]), starts)
        assert np.allclose(ratio[still.openness == 1], EYES)  # open: the photo's own eyes
        assert ratio.min() < 0.1 * EYES.max()


def test_the_head_moves_little_and_smoothly(minutes: list[StillMotion]) -> None:
    for still in minutes:
        for name in ("pitch", "yaw", "roll"):
            angle = getattr(still, name)
            assert np.abs(angle).max() <= HEAD_DEGREES[name]
            assert np.abs(np.diff(angle)).max() < 0.15  # degrees per frame at 25 fps
            assert angle.std() > 0.05 * HEAD_DEGREES[name]  # it does move
        motion = still.motion
        assert np.abs(motion.scale - 1).max() < 0.005  # breathing, not zooming
        assert np.abs(np.diff(motion.scale[:, 0])).max() < 1e-3
        assert not motion.exp.any()  # the photo's own expression


def test_the_seed_decides_everything() -> None:
    a, b = (still_motion(200, FPS, 7, EYES).motion for _ in range(2))
    assert motion_sha256(a) == motion_sha256(b)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("R", "scale", "c_eyes"))
    c = still_motion(200, FPS, 8, EYES).motion
    assert motion_sha256(c) != motion_sha256(a)
    assert still_motion(37, 29.97, 1, EYES).motion.n_frames == 37  # exactly the job's frames


def test_motion_amount_scales_head_and_face_but_keeps_the_lips() -> None:
    audio = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    motion = EnvelopeVoice().generate(audio, FPS, 25, seed=3, steps=None)
    assert scale_motion(motion, MotionAmount()) is motion  # 1, 1: as generated
    calm = scale_motion(motion, MotionAmount(head=0.0, face=0.0))
    assert np.allclose(calm.R, motion.R[0], atol=1e-6)
    assert np.allclose(calm.exp[:, 1], motion.exp[0, 1])  # a brow: held
    assert np.array_equal(calm.exp[:, 19], motion.exp[:, 19])  # a lip: still speaking
    half = scale_motion(motion, MotionAmount(head=0.5, face=0.5))
    angle = np.degrees(np.arccos(np.clip((np.trace(motion.R @ motion.R[0].T, axis1=1, axis2=2)
                                          - 1) / 2, -1, 1)))
    half_angle = np.degrees(np.arccos(np.clip(
        (np.trace(half.R @ half.R[0].T, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert np.allclose(half_angle, angle / 2, atol=1e-3)
    assert np.allclose(half.exp[:, 1] - motion.exp[0, 1], (motion.exp[:, 1] - motion.exp[0, 1]) / 2,
                       atol=1e-7)
    rel = motion.R[5:6].astype(np.float64) @ motion.R[0].T
    assert np.allclose(rotation_power(rel, 1.0), rel, atol=1e-6)  # Rodrigues round trip


def test_voice_keypoints_follow_joyvasas_rule() -> None:
    """JoyVASA (``live_portrait_wmg_pipeline.py`` at 74290f6, relative motion off as its CLI
    runs): R_new = R_d,i R_d,0^T R_s; exp_new = exp_s + (exp_d,i - exp_d,0), except that the
    lip keypoints take exp_d,i itself; s_new = s_s s_d,i / s_d,0; t_new = t_s + t_d,i - t_d,0
    with tz = 0; x = s_new (kp_s R_new + exp_new) + t_new. With lip sync on, the lips keep
    the photo's expression instead."""
    rng = np.random.default_rng(5)
    audio = rng.standard_normal(16000).astype(np.float32)
    motion = EnvelopeVoice().generate(audio, FPS, 10, seed=1, steps=None)
    kp, exp_s = rng.normal(0, 0.3, (21, 3)), rng.normal(0, 0.02, (21, 3))
    rot_s = still_motion(3, FPS, 2, EYES).motion.R[2].astype(np.float64)
    src = SourceKeypoints(kp=kp, R=rot_s, exp=exp_s, scale=np.array([1.4]),
                          t=np.array([0.01, -0.02, 0.3]), x_s=np.zeros((21, 3)))
    frames = np.arange(10)
    lips = list(LIP_KEYPOINTS)
    for hold in (False, True):
        ours = posed_keypoints(src, motion, frames, hold_lips=hold, absolute_lips=True)
        for i in frames:
            r_new = motion.R[i] @ motion.R[0].T @ rot_s
            exp_new = exp_s + (motion.exp[i] - motion.exp[0])
            exp_new[lips] = exp_s[lips] if hold else motion.exp[i][lips]
            s_new = 1.4 * motion.scale[i, 0] / motion.scale[0, 0]
            t_new = src.t + motion.t[i] - motion.t[0]
            t_new[2] = 0.0
            official = s_new * (kp @ r_new + exp_new) + t_new
            assert np.allclose(ours[i], official, atol=1e-5)
