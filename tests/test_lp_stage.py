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

from pipeline.compiled import CompiledOrEager
from pipeline.errors import Cancelled
from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait.animate import AnimateOptions, LivePortraitStage
from pipeline.liveportrait.loader import extract_library_motion, versions
from pipeline.liveportrait.template import load_template
from pipeline.media.frame_count import output_frame_count
from pipeline.settings import LoopMode
from pipeline.spec import CacheState, CancelToken
from tests.helpers.clips import make_clip
from tests.helpers.settings import pipeline_settings

NTSC = 30000 / 1001


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
        "settings": pipeline_settings(root, batch_size=2),
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


def test_the_render_tells_g_how_many_frames_are_ahead(lp_nets, scene, tmp_path) -> None:
    """Under ``auto`` a one-job process compiles G only for a render that repays it: the stage
    gives G the number of frames it is about to render (here 2 against a threshold of 2, so
    the compiled path, a recording stand-in for inductor around the same G, takes each frame
    singly), and the crops are those of the plain G."""
    plain_g = lp_nets.nets.generator
    g = plain_g.eager if isinstance(plain_g, CompiledOrEager) else plain_g
    calls: list[tuple[int, ...]] = []

    def recording(module: torch.nn.Module):
        def run(x: torch.Tensor) -> torch.Tensor:
            calls.append(tuple(x.shape))
            return module(x)
        return run

    wrapped = CompiledOrEager(g, recording, armed=False, pays_after=2)
    runner = dataclasses.replace(lp_nets, nets=dataclasses.replace(lp_nets.nets, generator=wrapped),
                                 timings={})
    settings = dataclasses.replace(scene["settings"], cache_dir=tmp_path / "cache")
    result = _run(LivePortraitStage(runner, scene["landmarker"], settings), scene, 0.08, 25.0)
    assert result.rendered == 2 and wrapped.armed
    assert calls == [(1, 256, 64, 64)] * 2
    plain = _run(LivePortraitStage(lp_nets, scene["landmarker"], scene["settings"]), scene,
                 0.08, 25.0)  # the first test's renders, from the module's cache
    for k in range(2):
        np.testing.assert_array_equal(result.crop(k), plain.crop(k))


def test_other_options_need_their_own_render_and_cancel_stops_it(lp_nets, scene) -> None:
    """Lip motion kept (no lip sync after) is not in the cache: rendering starts, and a
    cancelled job stops at the chunk boundary before any network runs."""
    stage = LivePortraitStage(lp_nets, scene["landmarker"], scene["settings"])
    token = CancelToken()
    token.cancel()
    lp_nets.timings = {}
    with pytest.raises(Cancelled):
        _run(stage, scene, 0.04, 25.0, options=AnimateOptions(hold_lips=False), cancel=token)
    assert "warping" not in lp_nets.timings and "appearance" not in lp_nets.timings


def test_driving_motion_is_extracted_once(lp_nets, lp_weights_dir, scene, tmp_path) -> None:
    settings = dataclasses.replace(scene["settings"], weights_dir=lp_weights_dir,
                                   cache_dir=tmp_path / "cache")
    assert (lp_nets.motion_version, lp_nets.render_version) == versions(lp_weights_dir)
    clips, landmarker = [scene["clip"]], scene["landmarker"]
    assert extract_library_motion(settings, clips, lp_nets, landmarker) == [CacheState.MISS]
    (entry,) = (tmp_path / "cache" / "motion").glob("*.pkl")
    assert entry.name.endswith(f"-{lp_nets.motion_version}.pkl")
    motion = load_template(entry)
    assert motion.n_frames == 2 and motion.fps == pytest.approx(NTSC)
    assert motion.c_eyes.shape == (2, 2) and motion.x_s.shape == (2, 21, 3)
    assert extract_library_motion(settings, clips, lp_nets, landmarker) == [CacheState.HIT]
