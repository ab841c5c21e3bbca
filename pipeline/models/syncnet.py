"""SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", ACCV-W 2016).

The two-stream network of joonson/syncnet_python (``SyncNetModel.S``, MIT) whose
``syncnet_v2.model`` checkpoint is the one the LSE-C / LSE-D evaluation uses (Wav2Lip's
``evaluation/scores_LSE``, MuseTalk, LatentSync).

* Audio: MFCC windows (B, 1, 13, 20): 13 cepstra x 20 frames at 100 Hz = 5 video frames at 25 fps.
  Output (B, 1024).
* Video: face-crop windows (B, 3, 5, 224, 224), BGR pixel values 0..255 as float, not normalised
  (the official code feeds ``cv2.imread`` values straight in). Output (B, 1024).

Module names and ``nn.Sequential`` indices follow the official file (``netcnnaud``, ``netfcaud``,
``netcnnlip``, ``netfclip``), so its state-dict keys load unchanged; parameter-free layers such as
the official ``MaxPool2d(1, 1)`` are kept because they hold index positions. The official
checkpoint predates BatchNorm's ``num_batches_tracked`` buffer (torch < 0.4); the conversion adds
it as 0 (unused in eval mode). Dropout, training and ``forward_lipfeat`` are not needed here.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

EMBED_DIM = 1024
VIDEO_SIZE = 224  # the crop side the network's last 6x6 conv is built for
WINDOW_FRAMES = 5  # video frames per window
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME  # 20
N_CEPSTRA = 13

# Prefixes the official trainer/instance wrappers may leave on keys (``SyncNetInstance.__S__``,
# DataParallel's ``module.``): stripped by the conversion.
WRAPPER_PREFIXES = ("module.", "__S__.")


def _bn_relu(cout: int, dims: int) -> list[nn.Module]:
    norm: nn.Module = nn.BatchNorm2d(cout) if dims == 2 else nn.BatchNorm3d(cout)
    return [norm, nn.ReLU()]


def _audio_cnn() -> nn.Sequential:
    """``netcnnaud``: (B,1,13,20) -> (B,512,1,1)."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, 1, 1), *_bn_relu(64, 2), nn.MaxPool2d(1, 1),  # 0..3
        nn.Conv2d(64, 192, 3, 1, 1), *_bn_relu(192, 2), nn.MaxPool2d(3, (1, 2)),  # 4..7
        nn.Conv2d(192, 384, 3, padding=1), *_bn_relu(384, 2),  # 8..10
        nn.Conv2d(384, 256, 3, padding=1), *_bn_relu(256, 2),  # 11..13
        nn.Conv2d(256, 256, 3, padding=1), *_bn_relu(256, 2), nn.MaxPool2d(3, 2),  # 14..17
        nn.Conv2d(256, 512, (5, 4), padding=0), *_bn_relu(512, 2),  # 18..20
    )


def _video_cnn() -> nn.Sequential:
    """``netcnnlip``: (B,3,5,224,224) -> (B,512,1,1,1)."""
    return nn.Sequential(
        nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0), *_bn_relu(96, 3),  # 0..2
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 3
        nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), *_bn_relu(256, 3),  # 4..6
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 7
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(256, 3),  # 8..10
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(256, 3),  # 11..13
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(256, 3),  # 14..16
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 17
        nn.Conv3d(256, 512, (1, 6, 6), padding=0), *_bn_relu(512, 3),  # 18..20
    )


def _head() -> nn.Sequential:
    """``netfcaud`` / ``netfclip``: 512 -> 1024."""
    return nn.Sequential(
        nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, EMBED_DIM)
    )


class SyncNet(nn.Module):
    """The official ``S`` network: an audio and a video embedding into one 1024-d space."""

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _audio_cnn()
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _video_cnn()

    def forward_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC windows -> (B, 1024) (official ``forward_aud``)."""
        mid = self.netcnnaud(mfcc)
        return self.netfcaud(mid.reshape(mid.shape[0], -1))

    def forward_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR 0..255 windows -> (B, 1024) (official ``forward_lip``)."""
        mid = self.netcnnlip(frames)
        return self.netfclip(mid.reshape(mid.shape[0], -1))


class KeyCollisionError(KeyError):
    """Two checkpoint keys map to the same network key after the wrapper prefixes are stripped."""


def convert_syncnet_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The network's state dict from the official ``syncnet_v2.model`` (pure, idempotent).

    Keeps tensor entries only; strips a leading ``module.`` / ``__S__.`` wrapper prefix; adds
    each BatchNorm's ``num_batches_tracked`` (0) where the file predates it (the official loader
    copies key by key, leaving the network's own 0 there). Raises ``KeyCollisionError`` naming
    the keys when two entries land on one name (for example ``x`` and ``module.x``), so nothing
    is silently overwritten; ``KeyError`` when the mapping holds no tensors at all.
    """
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in ckpt.items():
        if not isinstance(value, torch.Tensor):
            continue
        name = key
        for prefix in WRAPPER_PREFIXES:
            name = name.removeprefix(prefix)
        if name in out:
            raise KeyCollisionError(f"{origin[name]} and {key} both map to {name}")
        out[name], origin[name] = value, key
    if not out:
        raise KeyError("no tensors")
    for key in list(out):
        if key.endswith(".running_var"):
            tracked = key.removesuffix("running_var") + "num_batches_tracked"
            out.setdefault(tracked, torch.zeros((), dtype=torch.long))
    return out
