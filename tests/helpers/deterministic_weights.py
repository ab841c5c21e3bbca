"""The documented rule that makes parity fixtures reproducible: every tensor from its key and shape.

The same rule fills the official implementation (run outside this repo) and our networks, so
their outputs can be compared number for number. Rule, per state-dict key ``k`` of shape ``s``:

* seed = first 8 hex digits of sha256(k) as an int; a CPU ``torch.Generator`` seeded with it;
* conv / linear weights (ndim >= 2, name ends in ``weight`` or ``weight_orig``):
  ``normal(0, 1) * gain / sqrt(fan_in)`` with fan_in = prod(s[1:]);
* BatchNorm ``running_var``: ``uniform(0.5, 1.5)``; ``running_mean``: ``normal * 0.1``;
  ``num_batches_tracked``: 0;
* norm weights (1-D ``weight``): ``1 + 0.1 * normal``;
* everything else (biases, 1-D params, buffers such as GRN gamma/beta, noise): ``normal * 0.1``;
* spectral norm ``weight_u`` / ``weight_v``: the leading left / right singular vectors of
  ``weight_orig`` reshaped to (out, -1), as a converged power iteration would leave them.

Only torch is used, so a scratch script running the official code can import this file by path.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch


def key_generator(key: str) -> torch.Generator:
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return torch.Generator().manual_seed(seed)


def deterministic_tensor(
    key: str, shape: tuple[int, ...], dtype: torch.dtype, gain: float = 1.0
) -> torch.Tensor:
    """The rule above for one key (spectral-norm u/v are handled in ``fill_state_dict``)."""
    g = key_generator(key)
    name = key.rsplit(".", 1)[-1]
    if name == "num_batches_tracked" or not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if name == "running_var":
        return (torch.rand(shape, generator=g) + 0.5).to(dtype)
    if name == "running_mean":
        return (torch.randn(shape, generator=g) * 0.1).to(dtype)
    if len(shape) >= 2 and name in ("weight", "weight_orig"):
        fan_in = math.prod(shape[1:])
        return (torch.randn(shape, generator=g) * gain / math.sqrt(fan_in)).to(dtype)
    if len(shape) == 1 and name == "weight":
        return (1.0 + 0.1 * torch.randn(shape, generator=g)).to(dtype)
    return (torch.randn(shape, generator=g) * 0.1).to(dtype)


def fill_state_dict(
    template: Mapping[str, torch.Tensor], gain: float = 1.0
) -> dict[str, torch.Tensor]:
    """A state dict with the template's keys, shapes and dtypes, filled by the rule."""
    out = {k: deterministic_tensor(k, tuple(v.shape), v.dtype, gain) for k, v in template.items()}
    for k in template:
        if k.endswith(".weight_orig"):
            base = k[: -len("weight_orig")]
            if base + "weight_u" in out and base + "weight_v" in out:
                w = out[k].reshape(out[k].shape[0], -1).double()
                u, _, vh = torch.linalg.svd(w, full_matrices=False)
                sign = torch.sign(u[:, 0].sum()) or 1.0
                out[base + "weight_u"] = (u[:, 0] * sign).to(out[k].dtype)
                out[base + "weight_v"] = (vh[0] * sign).to(out[k].dtype)
    return out
