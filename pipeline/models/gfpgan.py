"""GFPGANv1Clean: the face-restoration network of GFPGAN v1.3 / v1.4 (pure torch).

Written to match the official ``GFPGANv1Clean`` (TencentARC/GFPGAN
``gfpgan/archs/gfpganv1_clean_arch.py``) so ``GFPGANv1.4.pth`` (``params_ema``, 285 keys) loads
unchanged. GFPGANer builds it for ``arch='clean'`` with: out_size 512, num_style_feat 512,
channel_multiplier 2, num_mlp 8, input_is_latent True, different_w True, narrow 1, sft_half True.

Structure: a U-Net encoder (ResBlocks down to 4x4) whose bottleneck gives one W latent per
decoder layer (``final_linear``); the U-Net's upsampling path gives, per level, an SFT scale and
shift (``condition_scale`` / ``condition_shift``) that modulate the StyleGAN2 decoder
(``stylegan_decoder``, see ``stylegan2.py``). Input RGB in [-1, 1], output RGB in about [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.models.keymap import rename
from pipeline.models.stylegan2 import StyleGAN2DecoderSFT, stylegan2_channels

EXPECTED_KEYS = 285  # entries in params_ema of the official GFPGANv1.4.pth


class ResBlock(nn.Module):
    """Two 3x3 convs with a bilinear resample between them, plus a resampled 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: float) -> None:
        super().__init__()
        self.scale_factor = scale_factor  # 0.5 in the encoder, 2 in the decoder
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, Cin, H, W) -> (B, Cout, H*s, W*s)
        out = F.leaky_relu(self.conv1(x), negative_slope=0.2)
        out = self._resample(out)
        out = F.leaky_relu(self.conv2(out), negative_slope=0.2)
        return out + self.skip(self._resample(x))

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False
        )


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    # Keys .0 and .2 as in the official nn.Sequential(conv, LeakyReLU, conv).
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """U-Net encoder + SFT conditions + StyleGAN2 clean decoder (inference only)."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int,
        channel_multiplier: int,
        num_mlp: int,
        input_is_latent: bool,
        different_w: bool,
        narrow: float,
        sft_half: bool,
    ) -> None:
        super().__init__()
        if not input_is_latent:
            # GFPGANer always uses latents directly; the Z-space path is not needed for inference.
            raise ValueError("only input_is_latent=True (the GFPGANv1.3/1.4 setting) is supported")
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log2(out_size))
        unet = stylegan2_channels(channel_multiplier, narrow * 0.5)  # U-Net: half the channels

        self.conv_body_first = nn.Conv2d(3, unet[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        in_ch = unet[out_size]
        for level in range(self.log_size, 2, -1):  # 512 -> 256 ... 8 -> 4
            self.conv_body_down.append(ResBlock(in_ch, unet[2 ** (level - 1)], 0.5))
            in_ch = unet[2 ** (level - 1)]
        self.final_conv = nn.Conv2d(in_ch, unet[4], 3, 1, 1)

        self.conv_body_up = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        self.toRGB = nn.ModuleList()  # official key name; intermediate RGBs, unused at inference
        in_ch = unet[4]
        for level in range(3, self.log_size + 1):  # 4 -> 8 ... 256 -> 512
            out_ch = unet[2**level]
            self.conv_body_up.append(ResBlock(in_ch, out_ch, 2))
            sft_ch = out_ch if sft_half else out_ch * 2
            self.condition_scale.append(_sft_branch(out_ch, sft_ch))
            self.condition_shift.append(_sft_branch(out_ch, sft_ch))
            self.toRGB.append(nn.Conv2d(out_ch, 3, 1))
            in_ch = out_ch

        num_latent = self.log_size * 2 - 2 if different_w else 1
        self.final_linear = nn.Linear(unet[4] * 4 * 4, num_latent * num_style_feat)
        self.stylegan_decoder = StyleGAN2DecoderSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half
        )

    def forward(self, x: torch.Tensor, randomize_noise: bool = False) -> torch.Tensor:
        """x (B, 3, S, S) RGB in [-1, 1] -> restored (B, 3, S, S) RGB, about [-1, 1].

        ``randomize_noise=False`` uses the checkpoint's stored noise maps (deterministic, and
        steady from frame to frame); the official GFPGANer default draws fresh noise per call.
        """
        feat = F.leaky_relu(self.conv_body_first(x), negative_slope=0.2)  # (B, 32, 512, 512)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu(self.final_conv(feat), negative_slope=0.2)  # (B, 256, 4, 4)

        latent = self.final_linear(feat.flatten(1))  # (B, num_latent * F)
        if self.different_w:
            latent = latent.view(latent.shape[0], -1, self.num_style_feat)  # (B, 16, 512)
        else:
            latent = latent.unsqueeze(1).repeat(1, self.stylegan_decoder.num_latent, 1)

        conditions: list[torch.Tensor] = []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - i])  # U-Net skip from the same resolution
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))

        decoder = self.stylegan_decoder
        noise = decoder.random_noise(x.shape[0], x) if randomize_noise else decoder.stored_noise()
        return decoder(latent, conditions, noise)


def build_gfpgan_v14() -> GFPGANv1Clean:
    """The network with GFPGANer's ``arch='clean'`` arguments (GFPGANv1.3 / v1.4 checkpoints)."""
    return GFPGANv1Clean(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=2,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    )


def convert_gfpgan_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The network state dict inside an official GFPGAN checkpoint; keys are used unchanged.

    Picks ``params_ema`` (the EMA weights GFPGANer loads), else ``params`` (the raw training
    weights, which GFPGANer also falls back to; a non-EMA file restores slightly worse). A dict
    that already is a flat state dict is returned as is, so the function is idempotent.
    Entries that are not tensors are dropped (the strict load then names them as missing).
    Raises ValueError when neither layout is recognised, ``KeyConversionError`` when two keys
    give the same name.
    """
    for name in ("params_ema", "params"):
        inner = ckpt.get(name)
        if isinstance(inner, Mapping):
            return _tensors(inner)
    if "final_linear.weight" in ckpt:
        return _tensors(ckpt)
    top = ", ".join(sorted(map(str, ckpt))[:6])
    raise ValueError(f"no 'params_ema' or 'params' entry (top-level keys: {top})")


def _tensors(sd: Mapping[Any, object]) -> dict[str, torch.Tensor]:
    """The tensor entries, keys as strings (``1`` and ``"1"`` would collide: refused)."""
    return rename({k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}, str)
