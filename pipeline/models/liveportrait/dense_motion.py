"""Dense motion network inside W: sparse keypoint motion -> dense 3-D flow and occlusion map.

LivePortrait (arXiv 2407.03168), Sec. 3.1, the flow estimator of the warping module W (after
face-vid2vid); official ``src/modules/dense_motion.py``. Coordinates are (x, y, z) = (right,
down, in), normalised to [-1, 1] over the 16 x 64 x 64 feature volume.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.blocks import Hourglass
from pipeline.models.liveportrait.ops import GridSample3d

KP_VARIANCE = 0.01  # the Gaussian heatmaps' variance (official create_heatmap_representations)


def make_coordinate_grid(d: int, h: int, w: int, ref: torch.Tensor) -> torch.Tensor:
    """Identity grid (d, h, w, 3) holding (x, y, z) in [-1, 1], on ``ref``'s device and dtype."""
    x = torch.arange(w, device=ref.device).to(ref.dtype)
    y = torch.arange(h, device=ref.device).to(ref.dtype)
    z = torch.arange(d, device=ref.device).to(ref.dtype)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    z = 2 * (z / (d - 1)) - 1
    xx = x.view(1, 1, w).expand(d, h, w)
    yy = y.view(1, h, 1).expand(d, h, w)
    zz = z.view(d, 1, 1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=3)  # (d, h, w, 3)


def kp2gaussian(kp: torch.Tensor, spatial: tuple[int, int, int], variance: float) -> torch.Tensor:
    """Keypoints (B, K, 3) -> unnormalised Gaussian heatmaps (B, K, d, h, w)."""
    b, k, _ = kp.shape
    grid = make_coordinate_grid(*spatial, ref=kp).view(1, 1, *spatial, 3)  # (1, 1, d, h, w, 3)
    diff = grid - kp.view(b, k, 1, 1, 1, 3)  # (B, K, d, h, w, 3)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class DenseMotion(NamedTuple):
    """Output of the dense motion network."""

    deformation: torch.Tensor  # (B, d, h, w, 3) fp32 sampling grid into the source volume
    occlusion_map: torch.Tensor | None  # (B, 1, h, w) in (0, 1), or None without occlusion
    mask: torch.Tensor  # (B, 1 + K, d, h, w) softmax weights over background + keypoints


class DenseMotionNetwork(nn.Module):
    """Compress f_s, warp it by each keypoint's motion, hourglass, softmax mask -> flow."""

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 feature_channel: int, reshape_depth: int, compress: int,
                 estimate_occlusion_map: bool = True) -> None:
        super().__init__()
        self.num_kp = num_kp
        # Input: (1 + K) x (compress + 1) channels = 22 x 5 = 110 (heatmap + compressed feature).
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (compress + 1), num_blocks,
                                   max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map else None
        )
        self.grid_sample = GridSample3d()

    def sparse_motions(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                       kp_source: torch.Tensor) -> torch.Tensor:
        """Per-keypoint backward flows plus the identity (background): (B, 1+K, d, h, w, 3)."""
        b, _, d, h, w = feature.shape
        identity = make_coordinate_grid(d, h, w, ref=kp_source).view(1, 1, d, h, w, 3)
        k = self.num_kp
        driving_to_source = (identity - kp_driving.view(b, k, 1, 1, 1, 3)) + kp_source.view(
            b, k, 1, 1, 1, 3
        )  # (B, K, d, h, w, 3)
        return torch.cat([identity.expand(b, 1, d, h, w, 3), driving_to_source], dim=1)

    def deformed_features(self, feature: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """The compressed feature sampled along each motion: (B, 1+K, C, d, h, w)."""
        b, c, d, h, w = feature.shape
        n = self.num_kp + 1
        repeated = feature.unsqueeze(1).expand(b, n, c, d, h, w).reshape(b * n, c, d, h, w)
        grids = motions.reshape(b * n, d, h, w, 3)  # (B*(1+K), d, h, w, 3)
        deformed = self.grid_sample(repeated, grids)  # (B*(1+K), C, d, h, w)
        return deformed.view(b, n, c, d, h, w)

    def heatmaps(self, spatial: tuple[int, int, int], kp_driving: torch.Tensor,
                 kp_source: torch.Tensor) -> torch.Tensor:
        """Driving minus source Gaussians, zero background channel first: (B, 1+K, 1, d, h, w)."""
        heat = kp2gaussian(kp_driving, spatial, KP_VARIANCE) - kp2gaussian(
            kp_source, spatial, KP_VARIANCE
        )  # (B, K, d, h, w)
        zeros = heat.new_zeros(heat.shape[0], 1, *spatial)
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> DenseMotion:
        """f_s (B, 32, 16, 64, 64), keypoints (B, 21, 3) -> flow, occlusion, mask."""
        b, _, d, h, w = feature.shape
        # Geometry (grids, heatmaps, softmax, flow) stays fp32 even when the convs run in half
        # precision, as under the official autocast; a no-op in fp32.
        kp_driving, kp_source = kp_driving.float(), kp_source.float()
        feature = F.relu(self.norm(self.compress(feature)))  # (B, 4, 16, 64, 64)
        motions = self.sparse_motions(feature, kp_driving, kp_source)
        deformed = self.deformed_features(feature, motions)  # (B, 22, 4, 16, 64, 64)
        heat = self.heatmaps((d, h, w), kp_driving, kp_source)  # (B, 22, 1, 16, 64, 64)
        inp = torch.cat([heat.to(deformed.dtype), deformed], dim=2)
        inp = inp.view(b, -1, d, h, w)  # (B, 22*5=110, 16, 64, 64)
        prediction = self.hourglass(inp)  # (B, 142, 16, 64, 64)

        mask = F.softmax(self.mask(prediction).float(), dim=1)  # (B, 22, 16, 64, 64)
        flows = motions.permute(0, 1, 5, 2, 3, 4)  # (B, 22, 3, d, h, w)
        deformation = (flows * mask.unsqueeze(2)).sum(dim=1)  # (B, 3, d, h, w)
        deformation = deformation.permute(0, 2, 3, 4, 1)  # (B, d, h, w, 3)

        occlusion = None
        if self.occlusion is not None:
            folded = prediction.view(b, -1, h, w)  # (B, 142*16=2272, 64, 64)
            occlusion = torch.sigmoid(self.occlusion(folded))  # (B, 1, 64, 64)
        return DenseMotion(deformation=deformation, occlusion_map=occlusion, mask=mask)
