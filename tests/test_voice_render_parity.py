"""A voice-driven render against the official JoyVASA pipeline (74290f6), same photo, voice and
noise, random weights in the official layouts (recipe: tests/fixtures/parity/joyvasa_render.md).

Our whole voice path: ``JoyVasaMotion.generate`` -> ``motion_maker`` (motion amount 1.0) ->
the stage's keypoints for generated motion (relative pose, absolute lips, stitching) -> W + G.
Only the crop is injected, on both sides (``tests/helpers/voice_render_inputs.py``): the
official cropper needs face detection and landmark models that random weights cannot stand in
for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.face.landmarks import FaceBox
from pipeline.face.paste import PasteBack
from pipeline.liveportrait.animate import AnimateOptions, LivePortraitStage
from pipeline.liveportrait.driving import ClipMotion
from pipeline.liveportrait.generated import GeneratedMotion, KeypointRule
from pipeline.liveportrait.nets import NetRunner
from pipeline.media.frame_count import output_frame_count
from pipeline.motion.amount import MotionAmount
from pipeline.motion.make import MotionJob, motion_maker
from pipeline.motion.source import MotionSource
from pipeline.spec import CacheState
from pipeline.voice.provider import JoyVasaMotion
from tests.helpers import voice_render_inputs as vin
from tests.helpers.joyvasa_checkpoints import write_weights_dir
from tests.helpers.settings import pipeline_settings
from tests.helpers.tolerance import assert_close, eps

pytestmark = [pytest.mark.parity, pytest.mark.slow]  # slow: full-size W + G, two frames
FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "joyvasa_render.npz"
# fp32 through 10 denoising steps x 2 windows, the stitching MLP, the warping's grid_sample and
# the generator. Measured on the fixture's kernel set (AVX-512): keypoints 8.3e-7 at magnitude
# 3.8 (2 ulps), crops 3.9e-5 over all 512 x 512 pixels (1.4e-5 on the kept ones). There the
# crops' bound is the issue's 1e-4 (800 ulps at magnitude ~1). Another kernel set rounds
# differently all along the chain (under ATEN_CPU_CAPABILITY=default: 1.2e-4 at worst, 3 of
# 12288 values over 1e-4), so it gets 2.5 times that bound.
FIXTURE_ISA = "AVX512"
ULPS_CROP = 800 if torch.backends.cpu.get_cpu_capability() == FIXTURE_ISA else 2000
ULPS_KP = 256
PIXEL_BOUND = 1e-4 if ULPS_CROP == 800 else 2.5e-4


class NoLandmarks:
    """The stage's landmarker serves only the crop, which this test injects."""

    def detect(self, rgb: np.ndarray) -> FaceBox:
        raise AssertionError("the crop is injected: nothing may detect a face")

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        raise AssertionError("the crop is injected: nothing may find landmarks")

    def track(self, rgb: np.ndarray, prev_landmarks: np.ndarray) -> np.ndarray:
        raise AssertionError("the crop is injected: nothing may track")

    def eyelids(self, rgb: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
        raise AssertionError("the crop is injected: nothing may read eyelids")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def voice_motion(tmp_path_factory: pytest.TempPathFactory) -> GeneratedMotion:
    """The job's motion as the runner makes it: the provider behind ``motion_maker``."""
    root = tmp_path_factory.mktemp("joyvasa_render_weights")
    write_weights_dir(root)
    n_frames = output_frame_count(vin.VOICE_SECONDS, vin.FPS)
    job = MotionJob(n_frames, vin.FPS, vin.SEED, None, MotionAmount(1.0, 1.0))
    maker = motion_maker(MotionSource.VOICE, job, vin.voice(),
                         JoyVasaMotion(root, torch.device("cpu")))
    return maker(np.zeros(2, np.float32))  # the eye ratios are not used by voice motion


@pytest.fixture(scope="module")
def rendered(lp_nets: NetRunner, voice_motion: GeneratedMotion, tmp_path_factory:
             pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every frame's driving keypoints, and the float crops of ``vin.FRAMES``."""
    image = vin.photo()
    source = vin.source_input(image, vin.crop_affine())  # the injected crop (the bypass)
    root = tmp_path_factory.mktemp("voice_render")
    stage = LivePortraitStage(lp_nets, NoLandmarks(), pipeline_settings(root))
    options = AnimateOptions(hold_lips=False)  # the official pipeline has no lip sync
    src = lp_nets.keypoint_info(source[None]).source()
    clip = ClipMotion(voice_motion.motion, voice_motion.sha256, CacheState.NONE)
    every = np.arange(voice_motion.motion.n_frames)
    with torch.inference_mode():
        x_d = stage.generated_keypoints(src, clip, every, options, voice_motion.rule,
                                        np.zeros(2, np.float32))
        f_s = lp_nets.appearance_features(source[None])
        frames = list(vin.FRAMES)
        crops = lp_nets.decode(f_s, src.x_s[None], np.ascontiguousarray(x_d[frames])).numpy()
    return {"x_d": x_d, **{f"crop_{i}": c for i, c in zip(frames, crops, strict=True)}}


def test_voice_motion_uses_the_official_keypoint_rule(voice_motion: GeneratedMotion) -> None:
    assert voice_motion.rule is KeypointRule.VOICE
    assert voice_motion.motion.n_frames == 103  # two windows: the seam is at frame 100


def test_driving_keypoints_match_the_official_pipeline(rendered: dict[str, np.ndarray],
                                                       ref: dict[str, np.ndarray]) -> None:
    """x_d of every frame, as the official loop hands it to ``warp_decode`` (its 3 extra frames
    from the audio padding are beyond the job's 103)."""
    x_d = rendered["x_d"]
    assert_close(x_d, ref["kp_driving"][: len(x_d)], what="x_d", ulps=ULPS_KP)


def test_rendered_crops_match_the_official_pipeline(rendered: dict[str, np.ndarray],
                                                    ref: dict[str, np.ndarray]) -> None:
    """The W + G output before ``parse_output`` (every 8th pixel of the 512 crop) at the start
    and on both sides of the window seam, within 1e-4."""
    s = vin.STRIDE
    for i in vin.FRAMES:
        expected = ref[f"crop_{i}"]
        got = rendered[f"crop_{i}"][:, s // 2::s, s // 2::s].transpose(1, 2, 0)
        allowed = ULPS_CROP * eps(np.float32) * float(np.abs(expected).max())
        assert allowed <= PIXEL_BOUND
        assert_close(got, expected, what=f"crop of frame {i}", ulps=ULPS_CROP)


def test_pasted_frames_match_the_official_paste_back(rendered: dict[str, np.ndarray],
                                                     ref: dict[str, np.ndarray]) -> None:
    """Our paste of the uint8 crop against the official ``paste_back`` (every 4th pixel).

    Not bit-equal by design: our feather mask is ``mask_template.png`` rebuilt (to 1/255) and
    our blend rounds where the official one truncates, so in the 16-px feather the frames
    differ by up to 3 levels. Where the mask is 0 or 1 only the crop's own uint8 truncation is
    left: a float crop within 1e-4 can fall on the other side of a level, so 1 level at most.
    """
    image = vin.photo()
    paste = PasteBack(vin.crop_affine(), (512, 512), (image.shape[1], image.shape[0]))
    assert paste.alpha is not None
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[paste.y0:paste.y1, paste.x0:paste.x1] = paste.alpha
    solid = ((alpha == 0) | (alpha == 1))[::4, ::4]
    for i in vin.FRAMES:
        crop = rendered[f"crop_{i}"].transpose(1, 2, 0)
        crop8 = (np.clip(crop, 0, 1) * 255.0).astype(np.uint8)  # official parse_output
        got = paste.paste(image, crop8)[::4, ::4].astype(np.int16)
        diff = np.abs(got - ref[f"pasted_{i}"].astype(np.int16)).max(axis=-1)
        assert int(diff[solid].max()) <= 1, f"frame {i}: {int(diff[solid].max())} levels"
        assert int(diff[~solid].max()) <= 3, f"frame {i}: {int(diff[~solid].max())} in the feather"
        assert float((diff[solid] > 0).mean()) < 0.01  # a level flip is rare, not the rule
