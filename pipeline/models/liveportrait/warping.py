"""Warping module W: warp the source feature volume f_s from x_s to x_d.

LivePortrait (arXiv 2407.03168), Sec. 3.1, symbol W; official ``src/modules/warping_network.py``.
The dense motion network gives a 3-D flow and an occlusion map; f_s is sampled along the flow,
folded to 2-D, passed through two convs and multiplied by the occlusion map.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pipeline.models.liveportrait.blocks import SameBlock2d
from pipeline.models.liveportrait.config import WarpingConfig
from pipeline.models.liveportrait.dense_motion import DenseMotionNetwork
from pipeline.models.liveportrait.ops import GridSample3d


class WarpOutput(NamedTuple):
    """W's outputs; ``out`` is what the generator G takes."""

    out: torch.Tensor  # (B, 256, 64, 64) warped 2-D feature
    occlusion_map: torch.Tensor | None  # (B, 1, 64, 64)
    deformation: torch.Tensor  # (B, 16, 64, 64, 3)


class WarpingNetwork(nn.Module):
    """W: dense motion (flow + occlusion), trilinear warp of f_s, SameBlock2d, 1x1 conv."""

    def __init__(self, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, reshape_channel: int, estimate_occlusion_map: bool,
                 dense_block_expansion: int, dense_max_features: int, dense_num_blocks: int,
                 dense_reshape_depth: int, dense_compress: int) -> None:
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            block_expansion=dense_block_expansion,
            num_blocks=dense_num_blocks,
            max_features=dense_max_features,
            num_kp=num_kp,
            feature_channel=reshape_channel,
            reshape_depth=dense_reshape_depth,
            compress=dense_compress,
            estimate_occlusion_map=estimate_occlusion_map,
        )
        width = block_expansion * (2**num_down_blocks)  # 256
        self.third = SameBlock2d(max_features, width, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1, stride=1)
        self.grid_sample = GridSample3d()

    @classmethod
    def from_config(cls, cfg: WarpingConfig) -> WarpingNetwork:
        dm = cfg.dense_motion
        return cls(cfg.num_kp, cfg.block_expansion, cfg.max_features, cfg.num_down_blocks,
                   cfg.reshape_channel, cfg.estimate_occlusion_map, dm.block_expansion,
                   dm.max_features, dm.num_blocks, dm.reshape_depth, dm.compress)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> WarpOutput:
        """f_s (B, 32, 16, 64, 64), x_d and x_s (B, 21, 3) -> WarpOutput.

        The argument order is the official one (driving before source); pass them by keyword.
        """
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        out = self.grid_sample(feature_3d, motion.deformation)  # (B, 32, 16, 64, 64)
        b, c, d, h, w = out.shape
        out = out.view(b, c * d, h, w)  # (B, 512, 64, 64)
        out = self.fourth(self.third(out))  # (B, 256, 64, 64)
        if motion.occlusion_map is not None:
            out = out * motion.occlusion_map
        return WarpOutput(out=out, occlusion_map=motion.occlusion_map,
                          deformation=motion.deformation)
