"""Device-portable, exact rewrites of the three 5-D ops the warping network W uses.

PyTorch's MPS backend gained ``grid_sampler_3d``, ``avg_pool3d`` and ``upsample_nearest3d`` only
in 2.9 (macOS 14+); before that they fall back to the CPU in the middle of the hot loop. The
rewrites below use only 4-D ops and gathers, which every backend has, and compute the same
numbers (tested equal to the native ops). Which path runs is one boolean per op module, chosen
once after loading (``needs_portable_ops``) and set with ``set_portable_ops``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The first torch release whose MPS backend has all three native 5-D kernels.
MPS_NATIVE_5D_SINCE = (2, 9)


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+", 1)[0].split(".")[:2]
    return int(major), int(minor)


def needs_portable_ops(device: torch.device | str) -> bool:
    """Whether the native 5-D ops are missing on ``device`` with the running torch."""
    return torch.device(device).type == "mps" and _torch_version() < MPS_NATIVE_5D_SINCE


def avg_pool3d_hw(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool3d(x, (1, 2, 2))`` as a 2-D pool over the depth-folded tensor."""
    b, c, d, h, w = x.shape
    y = F.avg_pool2d(x.reshape(b, c * d, h, w), kernel_size=2)  # (B, C*D, H/2, W/2)
    return y.reshape(b, c, d, h // 2, w // 2)  # -> (B, C, D, H/2, W/2)


def upsample_nearest3d_hw(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=(1, 2, 2))`` (nearest) as a 2-D nearest upsample."""
    b, c, d, h, w = x.shape
    y = F.interpolate(x.reshape(b, c * d, h, w), scale_factor=2.0, mode="nearest")  # (B,C*D,2H,2W)
    return y.reshape(b, c, d, 2 * h, 2 * w)  # -> (B, C, D, 2H, 2W)


def _unnormalize(coord: torch.Tensor, size: int) -> torch.Tensor:
    # align_corners=False: -1 and 1 are the outer edges of the corner voxels.
    return ((coord + 1) * size - 1) / 2


def grid_sample_3d(inp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(inp, grid, align_corners=False)`` for 5-D inputs, by an 8-corner gather.

    Trilinear interpolation with zero padding. ``inp`` is (N, C, D, H, W); ``grid`` is
    (N, Do, Ho, Wo, 3) holding (x, y, z) in [-1, 1] for (W, H, D). Returns (N, C, Do, Ho, Wo).
    Coordinates and weights are computed in at least fp32 so half-precision inputs keep their
    sub-voxel positions.
    """
    n, c, d, h, w = inp.shape
    _, do, ho, wo, _ = grid.shape
    g = grid.reshape(n, do * ho * wo, 3)  # (N, P, 3)
    if g.dtype in (torch.float16, torch.bfloat16):
        g = g.float()
    ix, iy, iz = _unnormalize(g[..., 0], w), _unnormalize(g[..., 1], h), _unnormalize(g[..., 2], d)
    x0, y0, z0 = ix.floor(), iy.floor(), iz.floor()
    x1, y1, z1 = x0 + 1, y0 + 1, z0 + 1
    flat = inp.reshape(n, c, d * h * w)  # (N, C, D*H*W)
    # Corner order and weight products follow the native kernel (tnw, tne, tsw, tse, bnw, ...).
    terms = [
        _corner(flat, xc, yc, zc, (w, h, d), wx * wy * wz)
        for zc, wz in ((z0, z1 - iz), (z1, iz - z0))
        for yc, wy in ((y0, y1 - iy), (y1, iy - y0))
        for xc, wx in ((x0, x1 - ix), (x1, ix - x0))
    ]
    out = terms[0]
    for term in terms[1:]:  # summed in the native kernel's order, as before
        out = out + term
    return out.to(inp.dtype).reshape(n, c, do, ho, wo)  # (N, C, P) -> (N, C, Do, Ho, Wo)


def _corner(
    flat: torch.Tensor,
    xc: torch.Tensor,
    yc: torch.Tensor,
    zc: torch.Tensor,
    size: tuple[int, int, int],
    weight: torch.Tensor,
) -> torch.Tensor:
    """One corner's weighted values: (N, C, P), zero where the corner lies outside the volume."""
    w, h, d = size
    inside = (xc >= 0) & (xc <= w - 1) & (yc >= 0) & (yc <= h - 1) & (zc >= 0) & (zc <= d - 1)
    xi = xc.clamp(0, w - 1).long()
    yi = yc.clamp(0, h - 1).long()
    zi = zc.clamp(0, d - 1).long()
    index = (zi * h + yi) * w + xi  # (N, P)
    values = flat.gather(2, index.unsqueeze(1).expand(-1, flat.shape[1], -1))  # (N, C, P)
    weight = torch.where(inside, weight, torch.zeros_like(weight))
    return values * weight.unsqueeze(1)  # half values promote to the fp32 weights


class GridSample3d(nn.Module):
    """Trilinear 5-D ``grid_sample`` (zeros padding, align_corners=False); no parameters.

    The grid may be fp32 while the features are half precision; the result has the features'
    dtype.
    """

    def __init__(self, portable: bool = False) -> None:
        super().__init__()
        self.portable = portable

    def forward(self, inp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        if self.portable:
            return grid_sample_3d(inp, grid)
        if inp.dtype != grid.dtype:  # half features, fp32 grid: sample in fp32, as autocast does
            out = F.grid_sample(inp.float(), grid.float(), mode="bilinear", padding_mode="zeros",
                                align_corners=False)
            return out.to(inp.dtype)
        return F.grid_sample(inp, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class AvgPool3dHW(nn.Module):
    """``AvgPool3d(kernel_size=(1, 2, 2))``; no parameters."""

    def __init__(self, portable: bool = False) -> None:
        super().__init__()
        self.portable = portable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.portable:
            return avg_pool3d_hw(x)
        return F.avg_pool3d(x, kernel_size=(1, 2, 2))


class UpsampleNearest3dHW(nn.Module):
    """Nearest upsampling by (1, 2, 2) of a 5-D tensor; no parameters."""

    def __init__(self, portable: bool = False) -> None:
        super().__init__()
        self.portable = portable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.portable:
            return upsample_nearest3d_hw(x)
        return F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")


PORTABLE_OP_MODULES = (GridSample3d, AvgPool3dHW, UpsampleNearest3dHW)


def set_portable_ops(net: nn.Module, portable: bool) -> int:
    """Switch every 5-D op module inside ``net`` to the rewrite (or back); returns how many."""
    count = 0
    for module in net.modules():
        if isinstance(module, PORTABLE_OP_MODULES):
            module.portable = portable
            count += 1
    return count
