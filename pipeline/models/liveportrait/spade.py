"""SPADE generator G: warped feature -> animated 512 x 512 image.

LivePortrait (arXiv 2407.03168), Sec. 3.1, symbol G (the decoder); official
``src/modules/spade_generator.py`` and the SPADE blocks of ``util.py``. The official convs
``conv_0``/``conv_1``/``conv_s`` are spectral-normalised; in inference the normalisation is a
constant factor, so they are plain convs here and ``convert.fold_spectral_norm`` folds
``weight_orig / (u^T W v)`` into ``weight`` when loading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.config import SpadeConfig

SPADE_HIDDEN = 128  # official SPADE nhidden
LEAKY_SLOPE = 0.2


class SPADE(nn.Module):
    """Spatially-adaptive norm: InstanceNorm(x) * (1 + gamma(seg)) + beta(seg)."""

    def __init__(self, norm_nc: int, label_nc: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_nc, SPADE_HIDDEN, kernel_size=3, padding=1), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(SPADE_HIDDEN, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(SPADE_HIDDEN, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)  # InstanceNorm2d(affine=False)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Two SPADE + LeakyReLU(0.2) + 3x3 conv steps, plus a (learned if fin != fout) shortcut."""

    def __init__(self, fin: int, fout: int, label_nc: int) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=1)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), LEAKY_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), LEAKY_SLOPE))
        return x_s + dx


class SPADEDecoder(nn.Module):
    """G: 3x3 conv, six SPADE blocks at 64^2, two upsampling blocks, conv + PixelShuffle."""

    def __init__(self, upscale: int, max_features: int, block_expansion: int, out_channels: int,
                 num_down_blocks: int) -> None:
        super().__init__()
        ch = min(max_features, block_expansion * (2**num_down_blocks))  # 256: W's output width
        self.fc = nn.Conv2d(ch, 2 * ch, kernel_size=3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ch, 2 * ch, ch))
        self.up_0 = SPADEResnetBlock(2 * ch, ch, ch)
        self.up_1 = SPADEResnetBlock(ch, out_channels, ch)
        self.upscale = upscale
        self.conv_img: nn.Module
        if upscale <= 1:
            self.conv_img = nn.Conv2d(out_channels, 3, kernel_size=3, padding=1)
        else:
            self.conv_img = nn.Sequential(
                nn.Conv2d(out_channels, 3 * 4, kernel_size=3, padding=1), nn.PixelShuffle(2)
            )

    @classmethod
    def from_config(cls, cfg: SpadeConfig) -> SPADEDecoder:
        return cls(cfg.upscale, cfg.max_features, cfg.block_expansion, cfg.out_channels,
                   cfg.num_down_blocks)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """W's ``out`` (B, 256, 64, 64) -> image (B, 3, 512, 512) in (0, 1)."""
        seg = feature
        x = self.fc(feature)  # (B, 512, 64, 64)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)  # (B,256,128,128)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)  # (B,64,256,256)
        x = self.conv_img(F.leaky_relu(x, LEAKY_SLOPE))  # (B, 3, 512, 512) after PixelShuffle
        return torch.sigmoid(x)
