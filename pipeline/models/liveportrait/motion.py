"""Motion extractor M: image -> canonical keypoints, head pose, expression, scale, translation.

LivePortrait (arXiv 2407.03168), Sec. 3.1, symbol M; official ``src/modules/motion_extractor.py``
and ``convnextv2.py`` (a ConvNeXtV2-tiny backbone with seven linear heads). The official class
wraps the backbone as ``detector``; here the backbone *is* the module, and ``convert`` strips the
``detector.`` prefix from the checkpoint keys.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.config import MotionConfig


class MotionOutput(NamedTuple):
    """Raw head outputs for a batch of B images (before ``keypoints.refine_motion``)."""

    pitch: torch.Tensor  # (B, 66) bin logits
    yaw: torch.Tensor  # (B, 66)
    roll: torch.Tensor  # (B, 66)
    t: torch.Tensor  # (B, 3) translation
    exp: torch.Tensor  # (B, 63) expression deformation, 21 x 3 flattened
    scale: torch.Tensor  # (B, 1)
    kp: torch.Tensor  # (B, 63) canonical keypoints, 21 x 3 flattened


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (N, C, H, W), written out as ConvNeXtV2 does (same arithmetic)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global Response Normalisation on channels-last (N, H, W, C) input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)  # (N, 1, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """ConvNeXtV2 block: depthwise 7x7, LayerNorm, MLP x4 with GELU and GRN, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)


class MotionExtractor(nn.Module):
    """M: ConvNeXtV2 stages, global average pool, LayerNorm, seven linear heads."""

    def __init__(self, num_kp: int, num_bins: int, in_chans: int, depths: tuple[int, ...],
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
                           ChannelsFirstLayerNorm(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(dims[i]),
                              nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(dim) for _ in range(depth)])
            for depth, dim in zip(depths, dims, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.fc_kp = nn.Linear(dims[-1], 3 * num_kp)
        self.fc_scale = nn.Linear(dims[-1], 1)
        self.fc_pitch = nn.Linear(dims[-1], num_bins)
        self.fc_yaw = nn.Linear(dims[-1], num_bins)
        self.fc_roll = nn.Linear(dims[-1], num_bins)
        self.fc_t = nn.Linear(dims[-1], 3)
        self.fc_exp = nn.Linear(dims[-1], 3 * num_kp)

    @classmethod
    def from_config(cls, cfg: MotionConfig) -> MotionExtractor:
        return cls(cfg.num_kp, cfg.num_bins, cfg.in_chans, cfg.depths, cfg.dims)

    def forward(self, x: torch.Tensor) -> MotionOutput:
        """(B, 3, 256, 256) RGB in [0, 1] -> the raw head outputs."""
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))  # final: (B, 768, 8, 8)
        feat = self.norm(x.mean([-2, -1]))  # global average pool -> (B, 768)
        return MotionOutput(
            pitch=self.fc_pitch(feat),
            yaw=self.fc_yaw(feat),
            roll=self.fc_roll(feat),
            t=self.fc_t(feat),
            exp=self.fc_exp(feat),
            scale=self.fc_scale(feat),
            kp=self.fc_kp(feat),
        )
