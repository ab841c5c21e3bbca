"""BiSeNet face parsing (Yu et al., ECCV 2018) as trained by zllrunning/face-parsing.PyTorch on
CelebAMask-HQ (19 classes), the network MuseTalk's ``FaceParsing`` uses to shape its blend mask.

Module names follow the official ``model.py`` / ``resnet.py`` (``cp.resnet.layer1.0.conv1``,
``cp.arm16``, ``ffm.convblk``, ``conv_out.conv_out``...), so ``79999_iter.pth`` loads unchanged.
The official constructor first loads ImageNet ``resnet18-5c106cde.pth`` into the backbone; the
face-parsing checkpoint then overwrites every backbone tensor, so that file is not needed here.
The official ``SpatialPath`` is defined but unused (BiSeNet uses the ResNet's 1/8 features in its
place) and is left out; its weights are not in the checkpoint.

Input: (B, 3, H, W) RGB, ``ToTensor`` then ImageNet-normalised (see ``pipeline.musetalk.parsing``),
H and W multiples of 32 (the official code uses 512 x 512). Output: three (B, 19, H, W) logit maps
(main, 1/8 and 1/16 auxiliary heads); the official inference takes the argmax of the first.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.keymap import rename

N_CLASSES = 19
WRAPPER_PREFIX = "module."


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet basic block; the official one has ``downsample`` as a (conv, bn) Sequential."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class Resnet18(nn.Module):
    """The backbone: features at 1/8, 1/16 and 1/32 of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _layer(64, 64, 1)
        self.layer2 = _layer(64, 128, 2)
        self.layer3 = _layer(128, 256, 2)
        self.layer4 = _layer(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinementModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = F.avg_pool2d(feat, feat.shape[2:])
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(atten)))


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(F.avg_pool2d(feat32, feat32.shape[2:]))
        avg_up = F.interpolate(avg, feat32.shape[2:], mode="nearest")
        feat32_up = F.interpolate(self.arm32(feat32) + avg_up, feat16.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(feat32_up)
        feat16_up = F.interpolate(self.arm16(feat16) + feat32_up, feat8.shape[2:], mode="nearest")
        return feat8, self.conv_head16(feat16_up), feat32_up


class FeatureFusionModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = F.avg_pool2d(feat, feat.shape[2:])
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(atten))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """The official network (``n_classes=19``), without the unused spatial path."""

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        feat_res8, feat_cp8, feat_cp16 = self.cp(x)
        outs = (
            self.conv_out(self.ffm(feat_res8, feat_cp8)),
            self.conv_out16(feat_cp8),
            self.conv_out32(feat_cp16),
        )
        up = [F.interpolate(o, size, mode="bilinear", align_corners=True) for o in outs]
        return up[0], up[1], up[2]


def convert_bisenet_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The network's state dict from the official ``79999_iter.pth`` (pure, idempotent).

    Keeps tensor entries; strips a DataParallel ``module.`` prefix (colliding keys raise
    ``KeyConversionError``); adds a BatchNorm ``num_batches_tracked`` (0, unused in eval mode)
    where the file lacks it.
    """
    tensors = {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    out = rename(tensors, lambda k: k.removeprefix(WRAPPER_PREFIX))
    for key in [k for k in out if k.endswith(".running_var")]:
        out.setdefault(key.removesuffix("running_var") + "num_batches_tracked",
                       torch.zeros((), dtype=torch.long))
    return out
