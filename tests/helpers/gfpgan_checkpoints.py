"""Random GFPGANv1.4 checkpoints in the official file layout, for loader and end-to-end tests.

The released ``GFPGANv1.4.pth`` is ``{'params_ema': state_dict}`` (285 keys, about 349 MB);
GFPGANer falls back to ``'params'`` when there is no EMA entry.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.models.gfpgan import build_gfpgan_v14


def random_gfpgan_state_dict(seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Seeded weights N(0, gain/sqrt(fan_in)); other tensors N(0, 0.1); noise maps N(0, 1).

    Gain stays at or below 1: GFPGAN's SFT products compound and the output explodes above ~1.1.
    """
    with torch.device("meta"):  # shapes only: skips the init of 86 M parameters
        template = build_gfpgan_v14().state_dict()
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, t in template.items():
        name = key.rsplit(".", 1)[-1]
        if ".noises." in key:
            out[key] = torch.randn(t.shape, generator=g)
        elif t.dim() >= 2 and name == "weight":
            fan_in = math.prod(t.shape[1:])
            out[key] = torch.randn(t.shape, generator=g) * (gain / math.sqrt(fan_in))
        else:
            out[key] = 0.1 * torch.randn(t.shape, generator=g)
    return out


def write_gfpgan_checkpoint(path: Path, seed: int = 0, entry: str = "params_ema") -> Path:
    """Write a random official-format ``GFPGANv1.4.pth`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({entry: random_gfpgan_state_dict(seed)}, path)
    return path
