"""The LivePortrait stage end to end on the real photo, a generated driving clip and random
weights: exact frame counts, each distinct driving frame rendered once, both caches hit."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import Cancelled
from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait.animate import AnimateOptions, LivePortraitStage
from pipeline.liveportrait.nets import LivePortraitNets
from pipeline.liveportrait.retime import output_frame_count
from pipeline.models.liveportrait.appearance import AppearanceFeatureExtractor
from pipeline.models.liveportrait.config import LivePortraitConfig
from pipeline.models.liveportrait.motion import MotionExtractor
from pipeline.models.liveportrait.spade import SPADEDecoder
from pipeline.models.liveportrait.stitching import StitchingRetargetingNetwork
from pipeline.models.liveportrait.warping import WarpingNetwork
from pipeline.settings import LoopMode, PipelineSettings
from pipeline.spec import CacheState, CancelToken
from tests.test_drivers import make_clip

NTSC = 30000 / 1001


@pytest.fixture(scope="session")
def lp_nets() -> LivePortraitNets:
    """The five official-architecture networks with seeded random weights, CPU fp32."""
    torch.manual_seed(0)
    cfg = LivePortraitConfig()
    modules = [
        AppearanceFeatureExtractor.from_config(cfg.appearance),
        MotionExtractor.from_config(cfg.motion),
        WarpingNetwork.from_config(cfg.warping),
        SPADEDecoder.from_config(cfg.spade),
        StitchingRetargetingNetwork.from_config(cfg.stitching.stitching),
        StitchingRetargetingNetwork.from_config(cfg.stitching.eye),
    ]
    for m in modules:
        m.eval()
    return LivePortraitNets(*modules, device=torch.device("cpu"), dtype=torch.float32,
                            motion_version="test-m", render_version="test-r")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path,
          landmark_weights_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("lpstage")
    landmarker = FaceLandmarker(landmark_weights_dir)
    image = np.asarray(Image.open(astronaut_path).convert("RGB"))
    return {
        "root": root,
        "image": image,
        "landmarks": landmarker.landmarks(image, landmarker.detect(image)),
        "landmarker": landmarker,
        # 2 frames at 29.97 fps, 320x256: not square, so the averaged-box crop path runs
        "clip": make_clip(root / "drive.mp4", astronaut_path, 2, Fraction(30000, 1001), width=320),
        "settings": PipelineSettings(weights_dir=root / "w", cache_dir=root / "cache",
                                     drivers_dir=root / "drivers", batch_size=2),
    }


def _run(stage: LivePortraitStage, scene: dict, seconds: float, fps: float, **kw: object):
    return stage.run(scene["image"], scene["landmarks"], scene["clip"], seconds, fps, **kw)


def test_stage_renders_distinct_frames_once_then_reuses_them(lp_nets, scene) -> None:
    stage = LivePortraitStage(lp_nets, scene["landmarker"], scene["settings"])
    seen: list[tuple[str, float]] = []
    first = _run(stage, scene, 0.2, 25.0, progress=lambda s, f: seen.append((s, f)))
    # 0.2 s at 25 fps = 5 frames; the 2-frame clip ping-pongs 0,1,0,1,0 at 29.97 fps
    assert first.n_frames == output_frame_count(0.2, 25.0) == 5
    assert first.distinct.tolist() == [0, 1] and first.order.tolist() == [0, 1, 0, 1, 0]
    assert (first.rendered, first.reused) == (2, 0)
    assert first.motion_cache is CacheState.MISS and first.render_cache is CacheState.MISS
    crops = [first.crop(k) for k in range(first.n_distinct)]
    assert all(c.shape == (512, 512, 3) and c.dtype == np.uint8 for c in crops)
    assert not np.array_equal(crops[0], crops[1])  # different driving poses, different renders
    assert {"warping", "spade_generator", "motion_extractor", "appearance"} <= set(first.timings)
    assert seen and seen[-1] == ("animate", 1.0)
    # the crop transform maps the photo's face centre into the crop
    centre = first.affine.apply(scene["landmarks"].mean(0))
    assert 128 < centre[0] < 384 and 128 < centre[1] < 384

    # same face and clip at 29.97 fps: nothing extracted, nothing rendered
    again = _run(stage, scene, 0.2, NTSC)
    assert again.n_frames == output_frame_count(0.2, NTSC) == 6
    assert again.order.tolist() == [0, 1, 0, 1, 0, 1]
    assert (again.rendered, again.reused) == (0, 2)
    assert again.motion_cache is CacheState.HIT and again.render_cache is CacheState.HIT
    assert "warping" not in again.timings
    for k in range(2):
        np.testing.assert_array_equal(again.crop(k), crops[k])
    np.testing.assert_array_equal(again.frame(3), crops[1])

    # plain repeat, a new stage (as after a daemon restart): still nothing rendered
    repeat = LivePortraitStage(lp_nets, scene["landmarker"],
                               dataclasses.replace(scene["settings"], loop_mode=LoopMode.REPEAT))
    third = _run(repeat, scene, 0.3, 25.0)
    assert third.n_frames == 8 and third.rendered == 0
    assert third.order.tolist() == [0, 1, 0, 1, 0, 1, 1, 0]  # floor(i * 1.1988) mod 2


def test_other_options_are_a_different_render(lp_nets, scene) -> None:
    """Lip motion kept (no lip sync after) is another cache entry; cancelling stops it."""
    stage = LivePortraitStage(lp_nets, scene["landmarker"], scene["settings"])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        _run(stage, scene, 0.04, 25.0, options=AnimateOptions(hold_lips=False), cancel=token)
    out = _run(stage, scene, 0.04, 25.0, options=AnimateOptions(hold_lips=False))
    assert out.n_frames == 1 and out.rendered == 1 and out.motion_cache is CacheState.HIT
