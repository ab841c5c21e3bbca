"""Stitching module S and the eye / lip retargeting modules R_eyes, R_lip (three MLPs).

LivePortrait (arXiv 2407.03168), Sec. 3.2, symbols S, R_eyes and R_lip; official
``src/modules/stitching_retargeting_network.py``. How their inputs are built and their outputs
applied is in ``keypoints.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.liveportrait.config import MLPConfig


class StitchingRetargetingNetwork(nn.Module):
    """Linear/ReLU stack ``mlp`` (keys ``mlp.0``, ``mlp.2``, ...): (B, input) -> (B, output)."""

    def __init__(self, input_size: int, hidden_sizes: tuple[int, ...], output_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = (input_size, *hidden_sizes)
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg: MLPConfig) -> StitchingRetargetingNetwork:
        return cls(cfg.input_size, cfg.hidden_sizes, cfg.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
