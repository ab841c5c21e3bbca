"""Building the LivePortrait stage from settings: device, dtype, checkpoints, version tags.

Cache version tags (see ``hashing.model_version``): the motion cache is keyed by the motion
extractor file only (driving motion depends on nothing else); the render cache by all five
files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.device import pick_device, pick_dtype
from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait.animate import LivePortraitStage
from pipeline.liveportrait.driving import clip_motion
from pipeline.liveportrait.hashing import model_version
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.liveportrait.nets import NetRunner
from pipeline.lp_weights import LIVEPORTRAIT_FILES, MOTION_FILE, load_liveportrait
from pipeline.settings import PipelineSettings
from pipeline.spec import CacheState, CancelToken, ProgressFn, no_progress


def versions(weights_dir: Path) -> tuple[str, str]:
    """(motion version, render version) of the checkpoint files in ``weights_dir``."""
    motion = model_version(weights_dir / MOTION_FILE)
    render = model_version(*(weights_dir / rel for rel in LIVEPORTRAIT_FILES))
    return motion, render


def load_runner(settings: PipelineSettings, device: torch.device | None = None,
                dtype: torch.dtype | None = None) -> NetRunner:
    """Load the five networks for ``settings`` (``WeightsError`` / ``ModelLoadError`` if not).

    fp16 is offered only on CUDA, where the official pipeline runs it (autocast); MPS and CPU
    stay fp32 as the official code keeps them.
    """
    device = device or pick_device(settings.device)
    if dtype is None:
        dtype = pick_dtype(device, settings.dtype, fp16_checked=device.type == "cuda")
    nets = load_liveportrait(settings.weights_dir, device, dtype)
    motion_v, render_v = versions(settings.weights_dir)
    return NetRunner.from_loaded(nets, device, dtype, motion_v, render_v)


def build_stage(settings: PipelineSettings, landmarker: FaceLandmarker | None = None,
                runner: NetRunner | None = None) -> LivePortraitStage:
    """The stage with its networks loaded (once per daemon)."""
    return LivePortraitStage(runner or load_runner(settings),
                             landmarker or FaceLandmarker(settings.weights_dir), settings)


def extract_library_motion(
    settings: PipelineSettings, clips: Sequence[Path], runner: NetRunner | None = None,
    landmarker: FaceLandmarker | None = None, progress: ProgressFn = no_progress,
) -> list[CacheState]:
    """Put each clip's motion into the keypoint cache now (``hit`` where it already was)."""
    runner = runner or load_runner(settings)
    landmarker = landmarker or FaceLandmarker(settings.weights_dir)
    cache = MotionCache(settings.cache_dir)
    return [
        clip_motion(clip, runner, landmarker, cache, settings.chunk_size, progress,
                    CancelToken()).cache
        for clip in clips
    ]
