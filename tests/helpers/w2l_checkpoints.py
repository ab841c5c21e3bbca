"""Random Wav2Lip checkpoints in the exact official file layout, for loader and end-to-end tests.

The official training scripts save ``{'state_dict', 'optimizer', 'global_step', 'global_epoch'}``
(``wav2lip_train.py save_checkpoint``); ``wav2lip.pth`` and ``wav2lip_gan.pth`` share one
architecture and key set, so ``gan`` only changes the weights drawn and the bookkeeping numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.models.wav2lip import Wav2Lip


def random_wav2lip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights scaled by fan-in (outputs stay alive), BN statistics near (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, t in Wav2Lip().state_dict().items():
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            out[key] = torch.zeros_like(t)
        elif name == "running_var":
            out[key] = torch.rand(t.shape, generator=g) + 0.5
        elif t.dim() >= 2:
            out[key] = torch.randn(t.shape, generator=g) / math.sqrt(math.prod(t.shape[1:]))
        elif name == "weight":
            out[key] = 1.0 + 0.1 * torch.randn(t.shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(t.shape, generator=g)
    return out


def official_checkpoint_dict(
    state_dict: dict[str, torch.Tensor], module_prefix: bool = False, gan: bool = False
) -> dict[str, object]:
    """Wrap a state dict as the official files are: optimizer state (Adam layout) and counters."""
    sd = {("module." + k if module_prefix else k): v for k, v in state_dict.items()}
    first = next(iter(state_dict.values()))
    optimizer = {  # a small but real Adam state_dict: one tracked parameter, one group
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(first),
                      "exp_avg_sq": torch.zeros_like(first)}},
        "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "params": list(range(len(state_dict)))}],
    }
    step = 253_000 if gan else 418_000
    return {"state_dict": sd, "optimizer": optimizer, "global_step": step,
            "global_epoch": step // 1000}


def write_wav2lip_checkpoint(
    path: Path, gan: bool = False, module_prefix: bool = False, seed: int = 0
) -> Path:
    """Write a random official-format ``wav2lip(_gan).pth`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = random_wav2lip_state_dict(seed + (1000 if gan else 0))
    torch.save(official_checkpoint_dict(sd, module_prefix=module_prefix, gan=gan), path)
    return path
