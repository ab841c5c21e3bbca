"""Loading the official SyncNet checkpoint (``syncnet_v2.model``) unchanged and strictly.

The official loader (``SyncNetInstance.loadParameters``) calls ``torch.load(path)`` and iterates
``.items()`` over the result, copying each tensor into ``S().state_dict()`` by name: the file is
a state dict (an ``OrderedDict`` of tensors saved by an early torch, before BatchNorm had
``num_batches_tracked``), not a pickled module. So ``torch.load(weights_only=True)`` reads it
(legacy serialisation included); a file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import WeightsError
from pipeline.models.syncnet import KeyCollisionError, SyncNet, convert_syncnet_state_dict
from pipeline.weights.checkpoint import load_strict, read_checkpoint

RELPATH = "syncnet/syncnet_v2.model"  # under weights_dir; the manifest entry's relpath
FETCH_FIX = "run 'facedrop weights fetch syncnet'"


def syncnet_path(weights_dir: Path) -> Path:
    """Where ``syncnet_v2.model`` lives under the weights folder."""
    return Path(weights_dir) / RELPATH


def load_syncnet(path: Path, device: torch.device | None = None) -> SyncNet:
    """Read the official checkpoint, convert its keys, load strictly; the net in eval mode.

    Raises ``WeightsError`` (with the fetch command as the fix) for a missing, HTML, truncated
    or non-state-dict file, for two keys that collide after conversion, and ``ModelLoadError``
    naming every missing, unexpected or mis-shaped key.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError("the SyncNet weights (syncnet_v2.model) are missing, so lip sync "
                           "cannot be scored", file=path, fix=FETCH_FIX)
    ckpt = read_checkpoint(path, "SyncNet")
    try:
        state_dict = convert_syncnet_state_dict(ckpt)
    except KeyCollisionError as exc:
        raise WeightsError(f"the SyncNet weights file has colliding keys: {exc.args[0]}",
                           file=path, fix=f"use the official file: {FETCH_FIX}") from exc
    except KeyError as exc:
        raise WeightsError("the SyncNet weights file holds no tensors", file=path,
                           fix=f"delete it and {FETCH_FIX}") from exc
    net = SyncNet()
    load_strict(net, state_dict, "SyncNet")
    net.eval()
    return net.to(device) if device is not None else net
