"""The LivePortrait networks: the one bundle of loaded modules, and the stage's timed calls.

``LivePortraitNets`` is what ``pipeline.liveportrait.loader.load_liveportrait`` returns.
``NetRunner`` wraps it with its device and dtype and the version tags the caches are keyed by.
Every runner call runs under ``torch.inference_mode``, casts inputs to the network dtype and
returns float32, and adds its wall time (device synchronised) to ``timings`` under the
network's name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pipeline.compiled import CompiledOrEager, expect_renders
from pipeline.device import synchronize
from pipeline.liveportrait.motion import SourceKeypoints
from pipeline.models.liveportrait.appearance import AppearanceFeatureExtractor
from pipeline.models.liveportrait.keypoints import (
    get_rotation_matrix,
    refine_motion,
    retarget_eye,
    stitching,
    transform_keypoint,
)
from pipeline.models.liveportrait.motion import MotionExtractor
from pipeline.models.liveportrait.spade import SPADEDecoder
from pipeline.models.liveportrait.spade_fused import FusedSPADEDecoder
from pipeline.models.liveportrait.stitching import StitchingRetargetingNetwork
from pipeline.models.liveportrait.warping import WarpingNetwork


@dataclass(frozen=True, slots=True)
class LivePortraitNets:
    """The five official files' networks, in eval mode, on one device and dtype."""

    appearance: AppearanceFeatureExtractor  # F
    motion: MotionExtractor  # M
    warping: WarpingNetwork  # W
    # G (fused by the loader: spade_fused; compiled where pipeline.compile asks: compiled.py)
    generator: SPADEDecoder | FusedSPADEDecoder | CompiledOrEager
    stitching: StitchingRetargetingNetwork  # S
    retarget_lip: StitchingRetargetingNetwork  # R_lip
    retarget_eye: StitchingRetargetingNetwork  # R_eyes
    portable_ops: bool  # whether W runs the portable 5-D op rewrites

    def modules(self) -> dict[str, nn.Module]:
        """Name -> network, for moving, counting or timing them together."""
        return {
            "appearance": self.appearance,
            "motion": self.motion,
            "warping": self.warping,
            "generator": self.generator,
            "stitching": self.stitching,
            "retarget_lip": self.retarget_lip,
            "retarget_eye": self.retarget_eye,
        }


@dataclass(frozen=True, slots=True)
class KeypointBatch:
    """M's refined output for a batch of B images, float32 numpy: ``scale`` (B,1), ``R``
    (B,3,3), ``exp``, ``kp`` and the posed ``x_s`` (B,21,3), ``t`` (B,3)."""

    scale: np.ndarray
    R: np.ndarray
    exp: np.ndarray
    t: np.ndarray
    kp: np.ndarray
    x_s: np.ndarray

    def source(self, i: int = 0) -> SourceKeypoints:
        """Image ``i``'s keypoints as the source face of a render."""
        return SourceKeypoints(kp=self.kp[i], R=self.R[i], exp=self.exp[i],
                               scale=self.scale[i], t=self.t[i], x_s=self.x_s[i])

    @classmethod
    def concat(cls, parts: Sequence[KeypointBatch]) -> KeypointBatch:
        """Batches one after the other (a clip extracted in chunks)."""
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts])
                      for f in ("scale", "R", "exp", "t", "kp", "x_s")})


@dataclass(slots=True)
class NetRunner:
    """F, M, W, G and the stitching/eye MLPs, in eval mode on ``device``.

    ``motion_version`` names the motion-extractor checkpoint (keys the motion cache);
    ``render_version`` names all the checkpoints a render depends on (keys the render cache).
    """

    nets: LivePortraitNets
    device: torch.device
    dtype: torch.dtype
    motion_version: str
    render_version: str
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time (after a device sync) to ``timings[name]``."""
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                yield
        finally:
            synchronize(self.device)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def to_input(self, rgb256: np.ndarray) -> torch.Tensor:
        """(B,256,256,3) uint8 RGB -> (B,3,256,256) in [0,1] on the device (official
        ``prepare_source``: /255, no mean/std)."""
        x = torch.from_numpy(np.ascontiguousarray(rgb256)).to(self.device)
        return (x.permute(0, 3, 1, 2).float() / 255.0).to(self.dtype)

    def keypoint_info(self, rgb256: np.ndarray) -> KeypointBatch:
        """M on a batch of (B,256,256,3) uint8 RGB images."""
        with self.timed("motion_extractor"):
            raw = self.nets.motion(self.to_input(rgb256))
            info = refine_motion(type(raw)(*(v.float() for v in raw)))
            rot = get_rotation_matrix(info.pitch, info.yaw, info.roll)
            x_s = transform_keypoint(info)
        return KeypointBatch(scale=_numpy(info.scale), R=_numpy(rot), exp=_numpy(info.exp),
                             t=_numpy(info.t), kp=_numpy(info.kp), x_s=_numpy(x_s))

    def appearance_features(self, rgb256: np.ndarray) -> torch.Tensor:
        """F: f_s (1,32,16,64,64) in the network dtype."""
        with self.timed("appearance"):
            return self.nets.appearance(self.to_input(rgb256))

    def stitch(self, x_s: np.ndarray, x_d: np.ndarray) -> np.ndarray:
        """S: x_d (B,21,3) stitched to x_s (1,21,3 or B,21,3)."""
        with self.timed("stitching"):
            xs = torch.from_numpy(np.broadcast_to(x_s, x_d.shape).copy()).to(self.device)
            xd = torch.from_numpy(x_d).to(self.device)
            return stitching(self.nets.stitching.float(), xs, xd).cpu().numpy()

    def eye_delta(self, x_s: np.ndarray, ratios: np.ndarray) -> np.ndarray:
        """R_eyes: [c_s_left, c_s_right, c_d] (B,3) -> keypoint delta (B,21,3)."""
        with self.timed("stitching"):
            xs = torch.from_numpy(np.broadcast_to(x_s, (len(ratios), *x_s.shape[-2:])).copy())
            out = retarget_eye(self.nets.retarget_eye.float(), xs.to(self.device),
                               torch.from_numpy(ratios).to(self.device))
            return out.cpu().numpy()

    def expect_renders(self, renders: int) -> None:
        """``renders`` frames are about to be rendered (G may compile for that many)."""
        expect_renders(self.nets.generator, renders)

    def render(self, f_s: torch.Tensor, x_s: np.ndarray, x_d: np.ndarray) -> np.ndarray:
        """W then G: (B,512,512,3) uint8 RGB crops for driving keypoints ``x_d`` (B,21,3)."""
        img = self.decode(f_s, x_s, x_d)
        # official parse_output: clip to [0,1], x255, to uint8 (truncation, not rounding)
        img = (img.float().clamp(0, 1) * 255.0).permute(0, 2, 3, 1)
        return img.to(torch.uint8).cpu().numpy()

    def decode(self, f_s: torch.Tensor, x_s: np.ndarray, x_d: np.ndarray) -> torch.Tensor:
        """W then G: the generator's (B,3,512,512) output before ``parse_output`` (the
        official ``warp_decode(...)['out']``), on the device in the networks' dtype."""
        b = x_d.shape[0]
        kp_s = torch.from_numpy(np.broadcast_to(x_s, x_d.shape).copy()).to(self.device, self.dtype)
        kp_d = torch.from_numpy(x_d).to(self.device, self.dtype)
        feat = f_s.expand(b, *f_s.shape[1:])
        with self.timed("warping"):
            warped = self.nets.warping(feat, kp_driving=kp_d, kp_source=kp_s).out
        with self.timed("spade_generator"):
            return self.nets.generator(warped)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)
