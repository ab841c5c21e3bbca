"""Pure, table-driven, idempotent key conversion from the official LivePortrait checkpoints.

One function per file. Each takes the state dict as read (plain tensors) and returns one whose
keys match our networks; a dict that already matches passes through unchanged, so converting
twice is harmless. No I/O here: reading is ``pipeline.weights.checkpoint.read_checkpoint``.

Official quirks handled:
* ``motion_extractor.pth``: every key is prefixed ``detector.`` (the official wrapper module).
* ``spade_generator.pth``: spectral-norm convs store ``weight_orig``/``weight_u``/``weight_v``;
  in eval mode torch uses ``weight_orig / (u . (W v))`` with the stored u, v, which we fold.
* ``stitching_retargeting_module.pth``: a dict of three sub-dicts, keys prefixed ``module.``
  (a DistributedDataParallel leftover); other top-level entries are not used by the official code.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

MOTION_PREFIX = "detector."
DDP_PREFIX = "module."
SPECTRAL_SUFFIXES = ("weight_orig", "weight_u", "weight_v")

# Official sub-dict name in the stitching file -> our network's role.
STITCHING_SUBDICTS: dict[str, str] = {
    "retarget_shoulder": "stitching",
    "retarget_mouth": "lip",
    "retarget_eye": "eye",
}

StateDict = dict[str, torch.Tensor]


def _strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Remove ``prefix`` from the keys that start with it (only at the start of a key)."""
    return {k.removeprefix(prefix): v for k, v in sd.items()}


def convert_appearance_extractor(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """F's keys are already ours."""
    return dict(sd)


def convert_motion_extractor(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Strip the ``detector.`` prefix of M's keys."""
    return _strip_prefix(sd, MOTION_PREFIX)


def convert_warping_module(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """W's keys are already ours."""
    return dict(sd)


def spectral_sigma(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sigma = u . (W v) with W = weight_orig as (out, -1), as torch's eval-mode spectral norm."""
    return torch.dot(u, torch.mv(weight_orig.reshape(weight_orig.shape[0], -1), v))


def fold_spectral_norm(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Replace every complete ``X.weight_orig/_u/_v`` triple by ``X.weight = weight_orig / sigma``.

    An incomplete triple is passed through unchanged, so the strict load names its keys.
    """
    complete = {
        key.removesuffix(".weight_orig")
        for key in sd
        if key.endswith(".weight_orig")
        and all(key.removesuffix("orig") + s in sd for s in ("u", "v"))
    }
    out: StateDict = {}
    for key, value in sd.items():
        base, _, name = key.rpartition(".")
        if base not in complete or name not in SPECTRAL_SUFFIXES:
            out[key] = value
        elif name == "weight_orig":
            u, v = sd[f"{base}.weight_u"], sd[f"{base}.weight_v"]
            out[f"{base}.weight"] = value / spectral_sigma(value, u, v)
    return out


def convert_spade_generator(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """G: fold spectral norm into plain conv weights."""
    return fold_spectral_norm(sd)


def split_stitching(checkpoint: Mapping[str, object]) -> dict[str, StateDict]:
    """The stitching file -> ``{"stitching": sd, "lip": sd, "eye": sd}`` without ``module.``.

    A missing sub-dict raises ``KeyError`` naming it; extra top-level entries are ignored, as
    the official loader ignores them.
    """
    if set(checkpoint) == set(STITCHING_SUBDICTS.values()):  # already split: idempotent
        return {role: dict(sd) for role, sd in checkpoint.items()}  # type: ignore[call-overload]
    out: dict[str, StateDict] = {}
    for official, role in STITCHING_SUBDICTS.items():
        if official not in checkpoint:
            raise KeyError(official)
        sub = checkpoint[official]
        if not isinstance(sub, Mapping):
            raise TypeError(f"{official} is a {type(sub).__name__}, not a state dict")
        out[role] = _strip_prefix(sub, DDP_PREFIX)
    return out
