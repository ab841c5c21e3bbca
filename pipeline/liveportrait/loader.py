"""Loading LivePortrait: the five official files into the networks, and the stage from settings.

The files are read with ``pipeline.weights.checkpoint`` (``weights_only=True``), their keys
converted by the pure functions of ``pipeline.models.liveportrait.convert`` and loaded strictly
(every colliding, missing, unexpected or mis-shaped key named).

Cache version tags (see ``hashing.model_version``): the motion cache is keyed by the motion
extractor file only (driving motion depends on nothing else); the render cache by all five
files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pipeline.compiled import maybe_compile
from pipeline.device import pick_device, pick_dtype
from pipeline.errors import ModelLoadError
from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait.animate import LivePortraitStage
from pipeline.liveportrait.driving import clip_motion
from pipeline.liveportrait.hashing import model_version
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.liveportrait.nets import LivePortraitNets, NetRunner
from pipeline.models.fold import fold_conv_norm_attributes, fold_pair
from pipeline.models.liveportrait import convert
from pipeline.models.liveportrait.appearance import AppearanceFeatureExtractor
from pipeline.models.liveportrait.config import LivePortraitConfig
from pipeline.models.liveportrait.motion import MotionExtractor
from pipeline.models.liveportrait.ops import needs_portable_ops, set_portable_ops
from pipeline.models.liveportrait.spade import SPADEDecoder
from pipeline.models.liveportrait.spade_fused import FusedSPADEDecoder
from pipeline.models.liveportrait.stitching import StitchingRetargetingNetwork
from pipeline.models.liveportrait.warping import WarpingNetwork
from pipeline.settings import PipelineSettings
from pipeline.spec import CacheState, CancelToken, ProgressFn, no_progress
from pipeline.weights.checkpoint import load_strict, read_checkpoint, read_state_dict

# Paths under PipelineSettings.weights_dir (the official Hugging Face layout).
APPEARANCE_FILE = "liveportrait/base_models/appearance_feature_extractor.pth"
MOTION_FILE = "liveportrait/base_models/motion_extractor.pth"
WARPING_FILE = "liveportrait/base_models/warping_module.pth"
SPADE_FILE = "liveportrait/base_models/spade_generator.pth"
STITCHING_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"
LIVEPORTRAIT_FILES = (APPEARANCE_FILE, MOTION_FILE, WARPING_FILE, SPADE_FILE, STITCHING_FILE)


def build_liveportrait(config: LivePortraitConfig | None = None) -> LivePortraitNets:
    """The networks with torch's default initialisation, on the CPU, in eval mode."""
    cfg = config or LivePortraitConfig()
    nets = LivePortraitNets(
        appearance=AppearanceFeatureExtractor.from_config(cfg.appearance),
        motion=MotionExtractor.from_config(cfg.motion),
        warping=WarpingNetwork.from_config(cfg.warping),
        generator=SPADEDecoder.from_config(cfg.spade),
        stitching=StitchingRetargetingNetwork.from_config(cfg.stitching.stitching),
        retarget_lip=StitchingRetargetingNetwork.from_config(cfg.stitching.lip),
        retarget_eye=StitchingRetargetingNetwork.from_config(cfg.stitching.eye),
        portable_ops=False,
    )
    for module in nets.modules().values():
        module.eval()
    return nets


def _load_one(
    module: nn.Module,
    path: Path,
    what: str,
    conversion: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]],
) -> None:
    load_strict(module, read_state_dict(path, what), what, conversion)


def _load_stitching(nets: LivePortraitNets, path: Path) -> None:
    """The stitching file holds three sub-dicts; each loads strictly into its MLP."""
    checkpoint = read_checkpoint(path, "stitching/retargeting")
    for role, module in (("stitching", nets.stitching), ("lip", nets.retarget_lip),
                         ("eye", nets.retarget_eye)):
        try:
            load_strict(module, checkpoint, f"stitching/retargeting ({role})",
                        partial(convert.stitching_part, role=role))
        except (KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"the stitching/retargeting checkpoint lacks a usable '{exc.args[0]}' entry "
                f"(expected {', '.join(convert.STITCHING_SUBDICTS)})",
                fix="check that the file is the official one: 'facedrop weights verify'",
            ) from exc


def fuse_nets(nets: LivePortraitNets) -> LivePortraitNets:
    """The exact inference rewrites (float32, eval mode): BatchNorm folded into the conv before
    it in F and W, G's SPADE convolutions regrouped (``spade_fused``). Outputs move by float
    rounding only; the official parity tests hold them to 1e-4."""
    fold_conv_norm_attributes(nets.appearance)
    fold_conv_norm_attributes(nets.warping)
    fold_pair(nets.warping.dense_motion_network, "compress", "norm")
    generator = nets.generator
    if isinstance(generator, SPADEDecoder):
        generator = FusedSPADEDecoder(generator)
    return dataclasses.replace(nets, generator=generator)


def load_liveportrait(
    weights_dir: Path,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    portable_ops: bool | None = None,
    config: LivePortraitConfig | None = None,
    fused: bool = True,
) -> LivePortraitNets:
    """Load the five official LivePortrait files from ``weights_dir``, in eval mode.

    ``fused`` applies ``fuse_nets`` (the default; ``facedrop bench --compare`` loads both).

    ``portable_ops=None`` picks the 5-D op rewrites where the device lacks the native kernels
    (MPS before torch 2.9). Raises ``WeightsError`` for an unreadable file and
    ``ModelLoadError`` naming the keys when a file does not match its network.
    """
    with torch.device("meta"):  # skip the default init: every tensor comes from the files
        nets = build_liveportrait(config)
    for module in nets.modules().values():
        module.to_empty(device=device)
    root = Path(weights_dir)
    _load_one(nets.appearance, root / APPEARANCE_FILE, "appearance feature extractor",
              convert.convert_appearance_extractor)
    _load_one(nets.motion, root / MOTION_FILE, "motion extractor", convert.convert_motion_extractor)
    _load_one(nets.warping, root / WARPING_FILE, "warping module", convert.convert_warping_module)
    _load_one(nets.generator, root / SPADE_FILE, "SPADE generator", convert.convert_spade_generator)
    _load_stitching(nets, root / STITCHING_FILE)
    portable = needs_portable_ops(device) if portable_ops is None else portable_ops
    set_portable_ops(nets.warping, portable)
    if fused:
        nets = fuse_nets(nets)
    for module in nets.modules().values():
        module.to(device=device, dtype=dtype).eval()
    return dataclasses.replace(nets, portable_ops=portable)




def versions(weights_dir: Path) -> tuple[str, str]:
    """(motion version, render version) of the checkpoint files in ``weights_dir``."""
    motion = model_version(weights_dir / MOTION_FILE)
    render = model_version(*(weights_dir / rel for rel in LIVEPORTRAIT_FILES))
    return motion, render


def load_runner(settings: PipelineSettings, device: torch.device | None = None,
                dtype: torch.dtype | None = None) -> NetRunner:
    """Load the five networks for ``settings`` (``WeightsError`` / ``ModelLoadError`` if not).

    fp16 under ``dtype: auto`` on CUDA (the official pipeline's autocast) and MPS: W + G's fp16
    frame is 60 dB PSNR from fp32 (``tests/test_half_precision.py``); the CPU stays fp32.
    """
    device = device or pick_device(settings.device)
    if dtype is None:
        dtype = pick_dtype(device, settings.dtype, fp16_checked=device.type in ("cuda", "mps"))
    nets = load_liveportrait(settings.weights_dir, device, dtype)
    nets = dataclasses.replace(nets, generator=maybe_compile(
        nets.generator, settings.compile, torch.device(device), settings.cache_dir,
        settings.process))
    motion_v, render_v = versions(settings.weights_dir)
    return NetRunner(nets=nets, device=torch.device(device), dtype=dtype,
                     motion_version=motion_v, render_version=render_v)


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
