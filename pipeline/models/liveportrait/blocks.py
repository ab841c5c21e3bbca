"""Convolution blocks shared by F and W (the official ``src/modules/util.py`` blocks).

Attribute names are the checkpoint's key names (``conv``, ``norm``, ``encoder.down_blocks``...),
so the official state dicts load unchanged. Parameter-free 5-D ops come from ``ops`` so they can
be switched to their portable rewrites.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.ops import AvgPool3dHW, UpsampleNearest3dHW


class SameBlock2d(nn.Module):
    """Conv2d + BatchNorm2d + ReLU (or LeakyReLU, slope 0.01), resolution kept."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1, lrelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x))
        return F.leaky_relu(out) if self.lrelu else F.relu(out)


class DownBlock2d(nn.Module):
    """Conv2d + BatchNorm2d + ReLU + 2x2 average pool."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class ResBlock3d(nn.Module):
    """Pre-activation 3-D residual block: (BN, ReLU, Conv3d) twice, plus the input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class DownBlock3d(nn.Module):
    """Conv3d + BatchNorm3d + ReLU + average pool over (1, 2, 2): depth is kept."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.pool = AvgPool3dHW()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock3d(nn.Module):
    """Nearest upsample by (1, 2, 2), then Conv3d + BatchNorm3d + ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.upsample = UpsampleNearest3dHW()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(self.upsample(x))))


def _hourglass_width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """``num_blocks`` DownBlock3d; returns the input and every level's output (for skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(
                in_features if i == 0 else _hourglass_width(block_expansion, max_features, i),
                _hourglass_width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """``num_blocks`` UpBlock3d with skip concatenation, then Conv3d + BatchNorm3d + ReLU."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            # The deepest block sees only the bottleneck; the others also the skip (hence x2).
            factor = 1 if i == num_blocks - 1 else 2
            in_filters = factor * _hourglass_width(block_expansion, max_features, i + 1)
            blocks.append(UpBlock3d(in_filters, _hourglass_width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)  # (B, C_up + C_skip, D, H, W)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3-D U-Net: encoder, decoder with skips; ``out_filters`` = block_expansion + in_features."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
