"""Reading official checkpoint files safely and loading them strictly into our networks.

``torch.load(weights_only=True)`` only: no file a user provides is ever unpickled freely.
Key conversion is each network's own pure function; this module only reads, loads and reports.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar, overload

import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.models.keymap import Collision, KeyConversionError

C = TypeVar("C")

FETCH_FIX = "run 'facedrop weights fetch', or 'facedrop weights import DIR' with files you have"


def read_checkpoint(path: Path, what: str) -> Mapping[str, object]:
    """Read a ``.pth`` checkpoint as plain tensors and dicts, or raise a ``WeightsError``.

    Tells apart a missing file, an HTML page saved under the checkpoint's name, a truncated or
    corrupt file, and a TorchScript archive (a different kind of file than the official one).
    """
    if not path.is_file():
        raise WeightsError(f"the {what} weights are missing", file=path, fix=FETCH_FIX)
    with path.open("rb") as f:
        head = f.read(512)
    if head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        raise WeightsError(
            f"the {what} weights file is a web page, not a checkpoint (a failed download)",
            file=path,
            fix=f"delete it and {FETCH_FIX}",
        )
    if _is_torchscript(path):
        raise WeightsError(
            f"the {what} weights file is a TorchScript archive, not the official state-dict "
            "checkpoint facedrop loads",
            file=path,
            fix=f"use the official .pth file: {FETCH_FIX}",
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or truncated archives
        raise WeightsError(
            f"the {what} weights file cannot be read ({type(exc).__name__}): it is truncated "
            "or corrupt",
            file=path,
            fix=f"delete it and {FETCH_FIX}",
        ) from exc
    if not isinstance(data, Mapping):
        raise WeightsError(
            f"the {what} weights file holds a {type(data).__name__}, not a state dict",
            file=path,
            fix=FETCH_FIX,
        )
    return data


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """``read_checkpoint`` for a file that is one flat state dict (name -> tensor)."""
    data = read_checkpoint(path, what)
    odd = sorted(k for k, v in data.items() if not isinstance(v, torch.Tensor))
    if odd:
        raise WeightsError(
            f"the {what} weights file is not a plain state dict: {', '.join(odd[:4])} "
            "hold no tensors",
            file=path,
            fix=FETCH_FIX,
        )
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``constants.pkl`` or ``code/`` entry."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


@overload
def load_strict(module: nn.Module, checkpoint: Mapping[str, torch.Tensor], what: str, *,
                assign: bool = False) -> None: ...


@overload
def load_strict(
    module: nn.Module, checkpoint: C, what: str, convert: Callable[[C], Mapping[str, torch.Tensor]],
    *, assign: bool = False,
) -> None: ...


def load_strict(
    module: nn.Module,
    checkpoint: C,
    what: str,
    convert: Callable[[C], Mapping[str, torch.Tensor]] | None = None,
    *,
    assign: bool = False,
) -> None:
    """Convert ``checkpoint`` with the network's pure ``convert`` and load it into ``module``
    with every key and shape checked (``convert=None``: it already is our state dict).
    ``assign=True`` makes the file's tensors the module's (a module built on the meta device,
    so a large network is never randomly initialised first).

    File keys that collide or are lacking (from the conversion's ``KeyConversionError``),
    missing, unexpected and mis-shaped keys are all reported by name in one ``ModelLoadError``.
    """
    collisions: tuple[Collision, ...] = ()
    lacking: tuple[str, ...] = ()
    if convert is None:
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f"a state dict is a mapping, not a {type(checkpoint).__name__}")
        state_dict: Mapping[str, torch.Tensor] = checkpoint
    else:
        try:
            state_dict = convert(checkpoint)
        except KeyConversionError as exc:
            state_dict, collisions, lacking = exc.converted, exc.collisions, exc.missing
    expected = module.state_dict()
    missing = sorted(set(lacking) | (set(expected) - set(state_dict)))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(
        f"{k} (file {tuple(state_dict[k].shape)}, network {tuple(expected[k].shape)})"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = [f"colliding keys: {'; '.join(map(str, collisions))}"] if collisions else []
    labelled = (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
    for label, keys in labelled:
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            problems.append(f"{label} keys: {shown}")
    if problems:
        raise ModelLoadError(
            f"the {what} checkpoint does not match the network: " + "; ".join(problems),
            fix="check that the file is the official one: 'facedrop weights verify'",
        )
    module.load_state_dict(dict(state_dict), strict=True, assign=assign)
