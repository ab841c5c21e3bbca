"""Folding eval-mode BatchNorm into the convolution before it (an exact rewrite for inference).

In eval mode ``BN(conv(x)) = conv(x) * s + t`` with per-channel ``s = gamma / sqrt(var + eps)``
and ``t = beta - mean * s``: the same as one convolution with weight ``W * s`` and bias
``b * s + t``. One pass over the activation instead of two; the result differs from the unfolded
pair only by float rounding (well under the 1e-4 parity tolerance in fp32).

Folding is done in float32 before any cast to half precision, and replaces the BatchNorm by an
``Identity`` in place: the module's ``state_dict`` keys change, so fold only after loading a
checkpoint, and never in training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import fuse_conv_bn_eval

ConvLike = nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d
Norm = nn.BatchNorm2d | nn.BatchNorm3d


def fold_pair(parent: nn.Module, conv_name: str, norm_name: str) -> bool:
    """Fold ``parent.<norm_name>`` into ``parent.<conv_name>`` when they are a conv and an
    eval-mode BatchNorm with running statistics; returns whether it folded."""
    conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
    if not isinstance(conv, ConvLike) or not isinstance(norm, Norm):
        return False
    if norm.training or conv.training or norm.running_mean is None or norm.running_var is None:
        return False
    transpose = isinstance(conv, nn.ConvTranspose2d | nn.ConvTranspose3d)
    with torch.no_grad():
        fused = fuse_conv_bn_eval(conv.float(), norm.float(), transpose=transpose)
    setattr(parent, conv_name, fused)
    setattr(parent, norm_name, nn.Identity())
    return True


def fold_sequential_pairs(root: nn.Module) -> int:
    """Fold every (conv, BatchNorm) that follow each other in an ``nn.Sequential`` under
    ``root`` (Wav2Lip's ``conv_block``s); returns how many were folded."""
    folded = 0
    for module in root.modules():
        if isinstance(module, nn.Sequential):
            names = [name for name, _ in module.named_children()]
            for first, second in zip(names, names[1:], strict=False):
                folded += fold_pair(module, first, second)
    return folded


def fold_conv_norm_attributes(root: nn.Module) -> int:
    """Fold ``norm`` into ``conv`` in every module under ``root`` that applies ``norm`` right
    after ``conv`` (LivePortrait's ``SameBlock2d``, ``DownBlock*``, ``UpBlock3d`` and the
    hourglass decoder's last layer). Modules that normalise before their conv (the
    pre-activation ``ResBlock3d``) have no ``conv``/``norm`` pair and are left alone."""
    folded = 0
    for module in list(root.modules()):
        if hasattr(module, "conv") and hasattr(module, "norm"):
            folded += fold_pair(module, "conv", "norm")
    return folded
