"""The sinusoidal positional encoding MuseTalk adds to the audio tokens before the UNet.

The official ``PositionalEncoding(d_model=384)`` (``musetalk/models/unet.py``): a float32 table
``pe[p, 2i] = sin(p * w_i)``, ``pe[p, 2i+1] = cos(p * w_i)``, ``w_i = exp(-2i * ln(10000) / d)``,
cast with the module (``pe.half()`` under ``--use_float16``) and added to the (B, 50, 384) tokens.
"""

from __future__ import annotations

import math

import torch

D_MODEL = 384
MAX_LEN = 5000


def positional_table(seq_len: int, d_model: int = D_MODEL) -> torch.Tensor:
    """(1, seq_len, d_model) float32, computed exactly as the official buffer (same op order)."""
    if not 0 < seq_len <= MAX_LEN:
        raise ValueError(f"seq_len must be in 1..{MAX_LEN}, not {seq_len}")
    pe = torch.zeros(MAX_LEN, d_model)
    position = torch.arange(0, MAX_LEN, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe[:seq_len].unsqueeze(0)


def add_positions(tokens: torch.Tensor) -> torch.Tensor:
    """``tokens + pe`` with the table cast to the tokens' dtype and device, as the official."""
    table = positional_table(tokens.shape[1], tokens.shape[2])
    return tokens + table.to(device=tokens.device, dtype=tokens.dtype)
