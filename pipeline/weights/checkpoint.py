"""Reading official checkpoint files safely and loading them strictly into our networks.

``torch.load(weights_only=True)`` only: no file a user provides is ever unpickled freely.
Key conversion is each network's own pure function; this module only reads and reports.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError

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


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state_dict`` into ``module`` with every key and shape checked.

    Missing, unexpected and mis-shaped keys are all reported by name in one ``ModelLoadError``.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(
        f"{k} (file {tuple(state_dict[k].shape)}, network {tuple(expected[k].shape)})"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = []
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
    module.load_state_dict(dict(state_dict), strict=True)
