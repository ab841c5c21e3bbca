"""The stage's bookkeeping at full scale, with tiny stand-in networks (no 1.2 TFLOP frames):
a 90 s job on a 10-frame clip renders 10 crops, and only a batch of decoded frames is ever
alive during extraction, however long the clip."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait import driving
from pipeline.liveportrait.animate import LivePortraitStage
from pipeline.liveportrait.nets import LivePortraitNets, NetRunner
from pipeline.media.video import iter_frames
from pipeline.memory import MemoryFigures
from pipeline.models.liveportrait.config import StitchingConfig
from pipeline.models.liveportrait.motion import MotionOutput
from pipeline.models.liveportrait.stitching import StitchingRetargetingNetwork
from pipeline.spec import CacheState, CancelToken, no_progress
from tests.helpers.clips import make_clip
from tests.helpers.settings import pipeline_settings


class _Motion(nn.Module):
    """Head outputs from the image's mean colour: cheap, but each frame gets its own motion."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 66 * 3 + 3 + 63 + 1 + 63)

    def forward(self, x: torch.Tensor) -> MotionOutput:
        out = self.fc(x.mean((2, 3)) * 10)
        p, y, r, t, exp, s, kp = out.split([66, 66, 66, 3, 63, 1, 63], dim=1)
        return MotionOutput(p, y, r, t, 0.05 * exp, 1.5 + 0.1 * s, kp)


class _Warp(nn.Module):
    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(out=(kp_driving - kp_source).flatten(1) * feature.flatten(1)[:, :1])


class _Generator(nn.Module):
    def forward(self, warped: torch.Tensor) -> torch.Tensor:
        level = torch.remainder(1000 * warped.mean(1), 1.0)  # (B,) a grey level per pose
        return level[:, None, None, None].expand(-1, 3, 512, 512)


class _Appearance(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((1, 2, 3))[:, None]


@pytest.fixture(scope="module")
def stub_runner() -> NetRunner:
    torch.manual_seed(0)
    cfg = StitchingConfig()
    nets = LivePortraitNets(
        appearance=_Appearance(), motion=_Motion().eval(), warping=_Warp(), generator=_Generator(),
        stitching=StitchingRetargetingNetwork.from_config(cfg.stitching).eval(),
        retarget_lip=StitchingRetargetingNetwork.from_config(cfg.lip).eval(),
        retarget_eye=StitchingRetargetingNetwork.from_config(cfg.eye).eval(),
        portable_ops=False,
    )
    return NetRunner(nets=nets, device=torch.device("cpu"), dtype=torch.float32,
                     motion_version="stub", render_version="stub")


@pytest.fixture(scope="module")
def landmarker(landmark_weights_dir: Path) -> FaceLandmarker:
    return FaceLandmarker(landmark_weights_dir)


def test_a_90_second_job_renders_only_the_clip_frames(stub_runner, landmarker, astronaut_path,
                                                      tmp_path) -> None:
    clip = make_clip(tmp_path / "ten.mp4", astronaut_path, 10, Fraction(25))
    settings = pipeline_settings(tmp_path, weights_dir=tmp_path, batch_size=4)
    stage = LivePortraitStage(stub_runner, landmarker, settings)
    image = np.asarray(Image.open(astronaut_path).convert("RGB"))
    lmk = landmarker.landmarks(image, landmarker.detect(image))
    out = stage.run(image, lmk, clip, 90.0, 25.0)
    assert out.n_frames == 2250 and out.distinct.tolist() == list(range(10))
    assert (out.rendered, out.reused) == (10, 0)
    levels = [int(out.crop(k)[0, 0, 0]) for k in range(10)]
    assert len(set(levels)) > 1  # the crops follow the driving motion
    # ping-pong: 0..9, 8..1, 0..9, ...; output frame 13 shows driving frame 5
    assert out.order[:20].tolist() == [*range(10), *range(8, 0, -1), 0, 1]
    np.testing.assert_array_equal(out.frame(13), out.crop(5))
    again = stage.run(image, lmk, clip, 90.0, 25.0)
    assert again.rendered == 0 and again.render_cache is CacheState.HIT


class _AliveFrames:
    """Wraps the frame reader and records how many decoded frames are alive at once."""

    def __init__(self) -> None:
        self.alive = 0
        self.most = 0

    def _gone(self) -> None:
        self.alive -= 1

    def __call__(self, path: Path) -> Iterator[np.ndarray]:
        for frame in iter_frames(path):
            frame = frame.view(_Frame)  # a subclass instance can be weakly referenced
            self.alive += 1
            weakref.finalize(frame, self._gone)
            gc.collect()
            self.most = max(self.most, self.alive)
            yield frame


class _Frame(np.ndarray):
    pass


@pytest.mark.parametrize("frames", [5, 12])  # 12: three batches of 4
def test_extraction_streams_frames(frames, stub_runner, landmarker, astronaut_path, tmp_path,
                                   monkeypatch) -> None:
    """Peak memory does not grow with the clip: never more than a batch of frames is alive."""
    clip = make_clip(tmp_path / "c.mp4", astronaut_path, frames, Fraction(25))
    counter = _AliveFrames()
    monkeypatch.setattr(driving, "iter_frames", counter)
    motion = driving.extract_motion(clip, stub_runner, landmarker, 4, no_progress, CancelToken())
    assert motion.n_frames == frames
    assert counter.most <= 4 + 2  # one batch, plus the frame being decoded


def test_keypoint_info_is_one_typed_batch(stub_runner) -> None:
    images = np.stack([np.full((256, 256, 3), v, np.uint8) for v in (40, 200)])
    kp = stub_runner.keypoint_info(images)
    assert kp.R.shape == (2, 3, 3) and kp.scale.shape == (2, 1) and kp.t.shape == (2, 3)
    assert kp.exp.shape == kp.kp.shape == kp.x_s.shape == (2, 21, 3)
    assert all(a.dtype == np.float32 for a in (kp.R, kp.scale, kp.t, kp.exp, kp.kp, kp.x_s))
    src = kp.source(1)
    np.testing.assert_array_equal(src.x_s, kp.x_s[1])
    both = type(kp).concat([kp, kp])
    assert both.R.shape == (4, 3, 3)
    np.testing.assert_array_equal(both.kp[2:], kp.kp)


def _recording_runner(stub_runner: NetRunner, sizes: list[int]) -> NetRunner:
    """The stub networks, with the generator recording each call's batch size."""

    class Recording(_Generator):
        def forward(self, warped: torch.Tensor) -> torch.Tensor:
            sizes.append(warped.shape[0])
            return super().forward(warped)

    nets = dataclasses.replace(stub_runner.nets, generator=Recording())
    return dataclasses.replace(stub_runner, nets=nets, timings={})


@pytest.mark.parametrize(("setting", "free_gib", "chunks", "probed"), [
    ("auto", 0.3, [1, 1, 1, 1, 1], 1),  # less than one frame's share free: one at a time
    ("auto", 64.0, [2, 2, 1], 1),  # plenty free: the CPU's cap
    (3, 0.1, [3, 2], 0),  # a set number is used as it is; the memory is not even read
])
def test_render_batch_follows_the_setting_and_the_free_memory(
    setting, free_gib, chunks, probed, stub_runner, landmarker, astronaut_path, tmp_path,
) -> None:
    sizes: list[int] = []
    reads: list[MemoryFigures] = []

    def memory() -> MemoryFigures:
        reads.append(MemoryFigures(int(free_gib * 2**30), 64 * 2**30, "test"))
        return reads[-1]

    settings = pipeline_settings(tmp_path, weights_dir=tmp_path, batch_size=setting)
    stage = LivePortraitStage(_recording_runner(stub_runner, sizes), landmarker, settings,
                              memory=memory)
    clip = make_clip(tmp_path / "five.mp4", astronaut_path, 5, Fraction(25))
    image = np.asarray(Image.open(astronaut_path).convert("RGB"))
    lmk = landmarker.landmarks(image, landmarker.detect(image))
    out = stage.run(image, lmk, clip, 0.2, 25.0)
    assert (out.rendered, out.render_batch) == (5, chunks[0]) and sizes == chunks
    assert len(reads) == probed
    again = stage.run(image, lmk, clip, 0.2, 25.0)  # all cached: no render, no memory read
    assert (again.rendered, again.render_batch) == (0, 0) and len(reads) == probed


def test_default_settings_choose_the_render_batch_automatically(tmp_path) -> None:
    assert pipeline_settings(tmp_path).batch_size == "auto"
