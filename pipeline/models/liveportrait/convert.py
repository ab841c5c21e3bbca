"""Pure, table-driven, idempotent key conversion from the official LivePortrait checkpoints.

One function per file. Each takes the state dict as read (plain tensors) and returns one whose
keys match our networks; a dict that already matches passes through unchanged, so converting
twice is harmless. Two file keys that give the same key of ours, or a spectral-norm trio that
lacks a member, raise ``keymap.KeyConversionError`` naming the file keys (the official loader
refuses such files too). No I/O here: reading is ``pipeline.weights.checkpoint.read_checkpoint``.

Official quirks handled:
* ``motion_extractor.pth``: every key is prefixed ``detector.`` (the official wrapper module).
* ``spade_generator.pth``: spectral-norm convs store ``weight_orig``/``weight_u``/``weight_v``;
  in eval mode torch uses ``weight_orig / (u . (W v))`` with the stored u, v, which we fold.
* ``stitching_retargeting_module.pth``: a dict of three sub-dicts, keys prefixed ``module.``
  (a DistributedDataParallel leftover); other top-level entries are not used by the official code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from pipeline.models.keymap import StateDict, merge, rename

MOTION_PREFIX = "detector."
DDP_PREFIX = "module."
SPECTRAL_SUFFIXES = ("weight_orig", "weight_u", "weight_v")

# Official sub-dict name in the stitching file -> our network's role.
STITCHING_SUBDICTS: dict[str, str] = {
    "retarget_shoulder": "stitching",
    "retarget_mouth": "lip",
    "retarget_eye": "eye",
}


def _strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Remove ``prefix`` from the keys that start with it (only at the start of a key); a key
    with and without the prefix both present is a collision."""
    return rename(sd, lambda k: k.removeprefix(prefix))


def convert_appearance_extractor(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """F's keys are already ours."""
    return rename(sd, str)


def convert_motion_extractor(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Strip the ``detector.`` prefix of M's keys."""
    return _strip_prefix(sd, MOTION_PREFIX)


def convert_warping_module(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """W's keys are already ours."""
    return rename(sd, str)


def spectral_sigma(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sigma = u . (W v) with W = weight_orig as (out, -1), as torch's eval-mode spectral norm."""
    return torch.dot(u, torch.mv(weight_orig.reshape(weight_orig.shape[0], -1), v))


def fold_spectral_norm(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Replace every ``X.weight_orig/_u/_v`` trio by ``X.weight = weight_orig / sigma``.

    A plain ``X.weight`` beside the trio collides with the folded one; a trio lacking a member
    names that member (``X.weight_u``), not the folded weight. Both raise ``KeyConversionError``.
    """
    bases = {k.rpartition(".")[0] for k in sd if k.rpartition(".")[2] in SPECTRAL_SUFFIXES}
    lacking = [f"{b}.{s}" for b in sorted(bases) for s in SPECTRAL_SUFFIXES if f"{b}.{s}" not in sd]
    return merge(_folded(sd, bases), lacking)


def _folded(
    sd: Mapping[str, torch.Tensor], bases: set[str]
) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(file key, our key, tensor) for ``fold_spectral_norm``; an incomplete trio's
    ``weight_orig`` stands in for its folded weight so only the lacking member is reported."""
    for key, value in sd.items():
        base, _, name = key.rpartition(".")
        if base not in bases or name not in SPECTRAL_SUFFIXES:
            yield key, key, value
        elif name == "weight_orig":
            u, v = sd.get(f"{base}.weight_u"), sd.get(f"{base}.weight_v")
            folded = value if u is None or v is None else value / spectral_sigma(value, u, v)
            yield key, f"{base}.weight", folded


def convert_spade_generator(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """G: fold spectral norm into plain conv weights."""
    return fold_spectral_norm(sd)


def stitching_part(checkpoint: Mapping[str, object], role: str) -> StateDict:
    """One MLP's state dict (``role``: stitching, lip or eye) from the stitching file.

    A missing sub-dict raises ``KeyError`` naming it, a sub-dict that is not a state dict
    ``TypeError``; extra top-level entries are ignored, as the official loader ignores them.
    An already split dict (our role names) passes through: idempotent.
    """
    official = next(o for o, r in STITCHING_SUBDICTS.items() if r == role)
    if set(checkpoint) == set(STITCHING_SUBDICTS.values()):  # already split
        official = role
    if official not in checkpoint:
        raise KeyError(official)
    sub = checkpoint[official]
    if not isinstance(sub, Mapping) or not all(isinstance(v, torch.Tensor) for v in sub.values()):
        raise TypeError(f"{official} is a {type(sub).__name__}, not a state dict")
    return _strip_prefix(sub, DDP_PREFIX)
