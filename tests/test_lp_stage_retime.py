"""Retiming and keypoint maths of the LivePortrait stage (no networks)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from pipeline.liveportrait.driving import driving_crop
from pipeline.liveportrait.hull import convex_hull_volume
from pipeline.liveportrait.motion import (
    LIP_KEYPOINTS,
    DrivingOption,
    SourceKeypoints,
    expression_multiplier,
    posed_keypoints,
    relative_keypoints,
)
from pipeline.liveportrait.render_cache import FRAME_BYTES, RenderCache
from pipeline.liveportrait.retime import loop_index, retime
from pipeline.liveportrait.template import DrivingMotion
from pipeline.media.frame_count import output_frame_count
from pipeline.settings import LoopMode
from tests.helpers.tolerance import assert_close

NTSC = 30000 / 1001
# float32 keypoint maths against the same formula in numpy: ulps of the keypoints' magnitude
FORMULA_ULPS = 16


@pytest.mark.parametrize("fps", [25.0, NTSC])
@pytest.mark.parametrize("seconds", [5.9, 4.0, 0.01, 12.345])
def test_output_covers_the_audio_to_the_frame(fps: float, seconds: float) -> None:
    n = output_frame_count(seconds, fps)
    assert n / fps >= seconds - 1e-9  # never shorter than the audio
    assert (n - 1) / fps < seconds  # and less than one frame longer


def test_exact_counts() -> None:
    assert output_frame_count(4.0, 25) == 100  # float noise must not add a frame
    assert output_frame_count(5.9, 25) == 148
    assert output_frame_count(10.0, NTSC) == 300  # 299.7 -> 300
    assert output_frame_count(1001 / 30000 * 77, NTSC) == 77
    assert output_frame_count(0.001, Fraction(30000, 1001)) == 1  # at least one frame


@pytest.mark.parametrize(("seconds", "fps"), [(0.0, 25.0), (-1.0, 25.0), (2.0, 0.0), (2.0, -25.0),
                                              (float("nan"), 25.0)])
def test_frame_count_refuses_what_is_not_positive(seconds: float, fps: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        output_frame_count(seconds, fps)


def test_pingpong_and_repeat_sequences() -> None:
    j = np.arange(12)
    assert loop_index(j, 4, LoopMode.PINGPONG).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert loop_index(j, 4, LoopMode.REPEAT).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]
    assert loop_index(j, 1, LoopMode.PINGPONG).tolist() == [0] * 12


@pytest.mark.parametrize("mode", [LoopMode.PINGPONG, LoopMode.REPEAT])
def test_retime_by_time_at_exact_rates(mode: LoopMode) -> None:
    # 25 fps output from a 29.97 fps clip of 10 frames, 3 s of audio
    n_out = output_frame_count(3.0, 25.0)
    plan = retime(n_out, 25.0, 10, NTSC, mode)
    assert plan.n_frames == 75
    for i in (0, 1, 7, 33, 74):
        j = math.floor(i / 25.0 * NTSC + 1e-6)
        assert plan.driving_index[i] == loop_index(np.array([j]), 10, mode)[0]
    np.testing.assert_array_equal(plan.distinct[plan.order], plan.driving_index)
    assert plan.distinct.tolist() == sorted(set(plan.driving_index.tolist()))
    # same rate, short audio: each output frame is its own driving frame
    same = retime(5, NTSC, 10, NTSC, mode)
    assert same.driving_index.tolist() == [0, 1, 2, 3, 4]


def test_long_audio_needs_only_the_clip_frames() -> None:
    plan = retime(output_frame_count(90.0, 25.0), 25.0, 250, 25.0, LoopMode.PINGPONG)
    assert plan.n_frames == 2250 and len(plan.distinct) == 250


def _source(rng: np.random.Generator) -> SourceKeypoints:
    kp = rng.normal(size=(21, 3)).astype(np.float32)
    exp = 0.1 * rng.normal(size=(21, 3)).astype(np.float32)
    scale = np.array([1.5], np.float32)
    t = np.array([0.1, -0.2, 0.3], np.float32)
    x_s = scale * (kp + exp)
    x_s[:, :2] += t[:2]
    return SourceKeypoints(kp=kp, R=np.eye(3, dtype=np.float32), exp=exp, scale=scale, t=t,
                           x_s=x_s)


def _driving(rng: np.random.Generator, n: int) -> DrivingMotion:
    ang = rng.uniform(-0.2, 0.2, n)
    rots = np.stack([[[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]]
                     for a in ang]).astype(np.float32)
    return DrivingMotion(fps=25.0, scale=rng.uniform(1, 2, (n, 1)).astype(np.float32), R=rots,
                         exp=0.1 * rng.normal(size=(n, 21, 3)).astype(np.float32),
                         t=rng.normal(size=(n, 3)).astype(np.float32))


def test_relative_motion_follows_the_official_formula() -> None:
    rng = np.random.default_rng(3)
    src, drv = _source(rng), _driving(rng, 6)
    x = posed_keypoints(src, drv, np.array([0, 4]), hold_lips=False)
    # frame 0 reproduces the source (tz zeroed, as x_s ignores tz)
    assert_close(x[0], src.x_s, ulps=FORMULA_ULPS, what="frame 0")
    i = 4
    r_new = drv.R[i] @ drv.R[0].T @ src.R
    exp_new = src.exp + drv.exp[i] - drv.exp[0]
    s_new = src.scale[0] * drv.scale[i, 0] / drv.scale[0, 0]
    t_new = src.t + drv.t[i] - drv.t[0]
    t_new[2] = 0
    assert_close(x[1], s_new * (src.kp @ r_new + exp_new) + t_new, ulps=FORMULA_ULPS,
                 what="frame 4")


def test_hold_lips_keeps_the_source_mouth_expression() -> None:
    rng = np.random.default_rng(4)
    src, drv = _source(rng), _driving(rng, 5)
    drv.R[:] = np.eye(3)
    drv.scale[:] = 1.0
    drv.t[:] = 0.0
    held = posed_keypoints(src, drv, np.arange(5), hold_lips=True)
    free = posed_keypoints(src, drv, np.arange(5), hold_lips=False)
    lips = list(LIP_KEYPOINTS)
    others = [k for k in range(21) if k not in lips]
    assert_close(held[:, lips], np.broadcast_to(src.x_s[lips], (5, 6, 3)), ulps=FORMULA_ULPS,
                 what="held lips")
    assert_close(held[:, others], free[:, others], ulps=FORMULA_ULPS, what="other keypoints")
    assert not np.allclose(free[1:, lips], held[1:, lips])


def test_expression_friendly_multiplier_rescales_motion() -> None:
    rng = np.random.default_rng(5)
    src, drv = _source(rng), _driving(rng, 4)
    m = expression_multiplier(src, drv)
    x0 = posed_keypoints(src, drv, np.array([0]), hold_lips=False)[0]
    assert m == pytest.approx(math.sqrt(convex_hull_volume(src.x_s) / convex_hull_volume(x0)))
    frames = np.array([0, 2, 3])
    ef = relative_keypoints(src, drv, frames, DrivingOption.EXPRESSION_FRIENDLY, False)
    pf = relative_keypoints(src, drv, frames, DrivingOption.POSE_FRIENDLY, False)
    assert_close(ef, (pf - x0) * m + src.x_s, ulps=FORMULA_ULPS, what="expression-friendly")


def test_hull_volume_of_a_box_with_interior_and_coplanar_points() -> None:
    box = np.array([[x, y, z] for x in (0, 1) for y in (0, 2) for z in (0, 3)], float)
    extra = np.array([[0.5, 1, 1.5], [0.5, 0, 1.5], [0, 1, 1]])  # interior and on faces
    assert convex_hull_volume(np.vstack([box, extra])) == pytest.approx(6.0)
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    assert convex_hull_volume(box @ rot.T * 2) == pytest.approx(48.0)
    assert convex_hull_volume(np.zeros((5, 3))) == 0.0


def test_render_cache_keeps_crops_and_evicts_least_recently_used(tmp_path) -> None:
    cache = RenderCache(tmp_path, limit_bytes=3 * FRAME_BYTES)
    a = cache.open("a", 10)
    crops = np.random.default_rng(0).integers(0, 255, (2, 512, 512, 3), dtype=np.uint8)
    a.write(np.array([3, 7]), crops)
    assert a.missing(np.array([1, 3, 7])).tolist() == [1]
    again = cache.open("a", 10)  # a new process sees the same done frames
    np.testing.assert_array_equal(again.read(7), crops[1])
    b = cache.open("b", 4)
    # b needs 2 frames: a (2 frames, least recently used) must go to stay within 3 frames
    assert cache.evict(keep="b", incoming_bytes=2 * FRAME_BYTES) == ["a"]
    assert not (tmp_path / "render" / "a").exists()
    b.write(np.array([0, 1]), crops)
    assert cache.evict(keep="b") == []
    with pytest.raises(KeyError):
        b.read(2)


def test_driving_crop_averages_boxes_and_keeps_filled_square_clips() -> None:
    boxes = np.array([[100, 50, 300, 250], [110, 60, 310, 260]], float)  # 200 px, centre moves
    crop = driving_crop(640, 360, boxes)  # not square: cropped with the averaged box
    assert crop is not None
    assert_close(crop.apply(np.array([[105, 55], [305, 255]])), np.array([[0, 0], [512, 512]]),
                 ulps=64, dtype=np.float64, what="averaged box corners")
    assert driving_crop(240, 240, boxes) is None  # square and the face fills it: as is
    assert driving_crop(480, 480, boxes) is not None  # square wide shot: still cropped
