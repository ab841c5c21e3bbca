"""A SyncNet checkpoint in the official format (``syncnet_v2.model``: a legacy-serialised state
dict without ``num_batches_tracked``), with deterministic random weights."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from pipeline.models.syncnet import SyncNet
from tests.helpers.deterministic_weights import fill_state_dict


def write_syncnet_checkpoint(path: Path) -> Path:
    sd = fill_state_dict(SyncNet().state_dict())
    legacy = OrderedDict((k, v) for k, v in sd.items() if "num_batches_tracked" not in k)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    return path
