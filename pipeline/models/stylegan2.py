"""The StyleGAN2 "clean" decoder GFPGANv1Clean generates its output with (pure torch).

Written to match the official ``StyleGAN2GeneratorClean`` / ``StyleGAN2GeneratorCSFT``
(TencentARC/GFPGAN ``gfpgan/archs/stylegan2_clean_arch.py`` and ``gfpganv1_clean_arch.py``, the
rosinality-derived version without compiled CUDA ops) so the official ``GFPGANv1.4.pth`` keys load
unchanged under ``stylegan_decoder.*``:

    style_mlp.{1,3,...,15}.{weight,bias}       (index 0 is NormStyleCode, even ones LeakyReLU)
    constant_input.weight                      (1, 512, 4, 4)
    style_conv1.*, to_rgb1.*                   the 4x4 level
    style_convs.{0..13}.*, to_rgbs.{0..6}.*    two convs and one ToRGB per level 8..out_size
    noises.noise{0..14}                        stored noise, used when randomize_noise is False

The SFT conditions (spatial scale and shift from GFPGAN's U-Net) are applied here, after the first
conv of each level, to the second half of the channels when ``sft_half`` (GFPGAN v1.3/v1.4).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class NormStyleCode(nn.Module):
    """Pixel-norm of style codes: x / sqrt(mean(x^2) + 1e-8) over the feature dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, F)
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated (and optionally demodulated) convolution, without bias.

    The per-sample weight is computed in fp32 even when the network runs in fp16: the
    demodulation sums thousands of squares, and the official eps 1e-8 is below fp16's range.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool,
        upsample: bool,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        shape = (1, out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # x: (B, Cin, H, W), style: (B, F) -> (B, Cout, H', W') with H' = 2H when upsampling
        b, c = x.shape[:2]
        scale = self.modulation(style).float().view(b, 1, c, 1, 1)
        weight = self.weight.float() * scale  # (B, Cout, Cin, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)  # (B, Cout)
            weight = weight * demod.view(b, self.out_channels, 1, 1, 1)
        k = self.kernel_size
        weight = weight.to(x.dtype).view(b * self.out_channels, c, k, k)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h, w = x.shape[2:]
        # One grouped conv runs every sample with its own weight: (1, B*Cin, H, W), groups=B.
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=k // 2, groups=b)
        return out.view(b, self.out_channels, h, w)


class StyleConv(nn.Module):
    """Modulated 3x3 conv, noise injection, bias, LeakyReLU(0.2)."""

    def __init__(
        self, in_channels: int, out_channels: int, num_style_feat: int, upsample: bool
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, 3, num_style_feat, demodulate=True, upsample=upsample
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # x: (B, Cin, H, W), noise: (1 or B, 1, H', W') -> (B, Cout, H', W')
        # sqrt(2): the official "for conversion" gain of the leaky-ReLU layers.
        out = self.modulated_conv(x, style) * 2**0.5
        out = out + self.weight * noise
        out = out + self.bias
        return F.leaky_relu(out, negative_slope=0.2)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) plus the upsampled skip from the level below."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample_skip: bool) -> None:
        super().__init__()
        self.upsample_skip = upsample_skip
        self.modulated_conv = ModulatedConv2d(
            in_channels, 3, 1, num_style_feat, demodulate=False, upsample=False
        )
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None
    ) -> torch.Tensor:
        # x: (B, C, H, W), skip: (B, 3, H/2, W/2) or None -> (B, 3, H, W)
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample_skip:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 start tensor, repeated over the batch."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:  # -> (B, C, size, size)
        return self.weight.repeat(batch, 1, 1, 1)


def stylegan2_channels(channel_multiplier: int, narrow: float) -> dict[int, int]:
    """Feature channels per resolution, as in the official generator's channel table."""
    base = {4: 512, 8: 512, 16: 512, 32: 512}
    base.update({64: 256 * channel_multiplier, 128: 128 * channel_multiplier})
    base.update({256: 64 * channel_multiplier, 512: 32 * channel_multiplier})
    base[1024] = 16 * channel_multiplier
    return {res: int(ch * narrow) for res, ch in base.items()}


class StyleGAN2DecoderSFT(nn.Module):
    """StyleGAN2 clean generator driven by per-layer latents and GFPGAN's SFT conditions.

    Latents are already in W space (GFPGAN's ``input_is_latent=True``), so the style MLP is kept
    only so that the official checkpoint loads strictly; GFPGAN's forward never runs it.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int,
        num_mlp: int,
        channel_multiplier: int,
        narrow: float,
        sft_half: bool,
    ) -> None:
        super().__init__()
        self.sft_half = sft_half
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1  # 15 style convs at 512
        self.num_latent = self.log_size * 2 - 2  # 16 latents at 512
        channels = stylegan2_channels(channel_multiplier, narrow)

        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)

        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = StyleConv(channels[4], channels[4], num_style_feat, upsample=False)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample_skip=False)

        self.noises = nn.Module()
        for idx in range(self.num_layers):
            res = 2 ** ((idx + 5) // 2)  # 4, 8, 8, 16, 16, ..., out_size, out_size
            self.noises.register_buffer(f"noise{idx}", torch.zeros(1, 1, res, res))

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = channels[4]
        for level in range(3, self.log_size + 1):
            out_ch = channels[2**level]
            self.style_convs.append(StyleConv(in_ch, out_ch, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, num_style_feat, upsample=False))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, upsample_skip=True))
            in_ch = out_ch

    def stored_noise(self) -> list[torch.Tensor]:
        """The checkpoint's noise maps, one per style conv: (1, 1, res, res)."""
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def random_noise(self, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        """Fresh N(0,1) noise of the stored shapes (the official default, not deterministic)."""
        return [
            torch.randn(batch, 1, *n.shape[2:], device=like.device, dtype=like.dtype)
            for n in self.stored_noise()
        ]

    def _sft(self, out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if not self.sft_half:
            return out * scale + shift
        same, sft = torch.split(out, out.size(1) // 2, dim=1)
        return torch.cat([same, sft * scale + shift], dim=1)

    def forward(
        self, latent: torch.Tensor, conditions: list[torch.Tensor], noise: list[torch.Tensor]
    ) -> torch.Tensor:
        """latent (B, num_latent, F); conditions [scale, shift] per level 8..out_size;
        noise: one map per style conv -> image (B, 3, out_size, out_size), roughly [-1, 1]."""
        out = self.constant_input(latent.shape[0])  # (B, 512, 4, 4)
        out = self.style_conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1], None)  # (B, 3, 4, 4)
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1  # latent / noise index of this level's first conv
            out = self.style_convs[2 * j](out, latent[:, i], noise[i])  # upsampled x2
            if 2 * j + 1 < len(conditions):  # conditions may cover fewer levels
                out = self._sft(out, conditions[2 * j], conditions[2 * j + 1])
            out = self.style_convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip
