"""Appearance feature extractor F: source image s -> 3-D appearance feature volume f_s.

LivePortrait (arXiv 2407.03168), Sec. 3.1, symbol F; official ``src/modules/
appearance_feature_extractor.py``. Input RGB in [0, 1], (B, 3, 256, 256); output
f_s (B, 32, 16, 64, 64).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.liveportrait.blocks import DownBlock2d, ResBlock3d, SameBlock2d
from pipeline.models.liveportrait.config import AppearanceConfig


class AppearanceFeatureExtractor(nn.Module):
    """F: 2-D encoder, 1x1 conv to ``max_features``, fold into a volume, 3-D residual blocks."""

    def __init__(self, image_channel: int, block_expansion: int, num_down_blocks: int,
                 max_features: int, reshape_channel: int, reshape_depth: int,
                 num_resblocks: int) -> None:
        super().__init__()
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=3, padding=1)
        widths = [min(max_features, block_expansion * (2**i)) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(widths[i], widths[i + 1]) for i in range(num_down_blocks)
        )
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1, stride=1)
        # Sequential children named '3dr0'..'3dr5', as in the checkpoint keys.
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, 3, 1))

    @classmethod
    def from_config(cls, cfg: AppearanceConfig) -> AppearanceFeatureExtractor:
        return cls(cfg.image_channel, cfg.block_expansion, cfg.num_down_blocks, cfg.max_features,
                   cfg.reshape_channel, cfg.reshape_depth, cfg.num_resblocks)

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        """(B, 3, 256, 256) in [0, 1] -> f_s (B, 32, 16, 64, 64)."""
        out = self.first(source_image)  # (B, 64, 256, 256)
        for block in self.down_blocks:
            out = block(out)  # -> (B, 128, 128, 128) -> (B, 256, 64, 64)
        out = self.second(out)  # (B, 512, 64, 64)
        b, _, h, w = out.shape
        f_s = out.view(b, self.reshape_channel, self.reshape_depth, h, w)  # (B, 32, 16, 64, 64)
        return self.resblocks_3d(f_s)
