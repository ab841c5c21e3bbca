"""Loading GFPGANv1.4 from the official checkpoint file (kept out of pipeline/models: file I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from pipeline.errors import ModelLoadError
from pipeline.models.gfpgan import GFPGANv1Clean, build_gfpgan_v14, convert_gfpgan_state_dict
from pipeline.weights.checkpoint import load_strict, read_checkpoint

WHAT = "GFPGAN"


def gfpgan_from_checkpoint(
    ckpt: Mapping[str, object], device: torch.device, dtype: torch.dtype
) -> GFPGANv1Clean:
    """The network in eval mode on ``device``/``dtype`` from an official checkpoint dict.

    Raises ``ModelLoadError`` naming the colliding / missing / unexpected / mis-shaped keys.
    """
    net = build_gfpgan_v14()
    try:
        load_strict(net, ckpt, WHAT, convert_gfpgan_state_dict)
    except ValueError as exc:
        raise ModelLoadError(
            f"the {WHAT} checkpoint has an unknown layout: {exc}",
            fix="use the official GFPGANv1.4.pth: 'facedrop weights verify'",
        ) from exc
    return net.to(device=device, dtype=dtype).eval()


def load_gfpgan(path: Path, device: torch.device, dtype: torch.dtype) -> GFPGANv1Clean:
    """Read ``GFPGANv1.4.pth`` safely (weights_only) and build the network from it.

    fp16 is supported (the modulated-conv weights are computed in fp32 and cast), but its error
    against fp32 has only been reasoned about, not measured on CUDA or MPS.
    """
    return gfpgan_from_checkpoint(read_checkpoint(Path(path), WHAT), device, dtype)
