"""Loading the official Wav2Lip checkpoints (``wav2lip.pth``, ``wav2lip_gan.pth``) unchanged."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import ConfigError, WeightsError
from pipeline.models.wav2lip import Wav2Lip, convert_wav2lip_state_dict
from pipeline.settings import WAV2LIP_MODELS
from pipeline.weights.checkpoint import FETCH_FIX, load_strict, read_checkpoint

MODELS = WAV2LIP_MODELS  # the Wav2Lip engines' checkpoint names

# The Google Drive link in the official README (2025) now serves Wav2Lip-SD-GAN.pt /
# Wav2Lip-SD-NOGAN.pt: TorchScript exports whose equivalence to the classic files is unproven
# (Rudrabha/Wav2Lip#743). The classic state-dict files are mirrored on Hugging Face with known
# hashes (wav2lip.pth b78b681b..., wav2lip_gan.pth ca9ab7b7...).
TORCHSCRIPT_FIX = (
    "use the classic state-dict checkpoints wav2lip.pth / wav2lip_gan.pth (about 436 MB each) "
    "from the Hugging Face mirror in facedrop's weights manifest "
    "(https://huggingface.co/Nekochu/Wav2Lip), not the Wav2Lip-SD-*.pt TorchScript files the "
    f"official Google Drive link now serves: {FETCH_FIX}"
)


def wav2lip_path(weights_dir: Path, model: str) -> Path:
    """Where ``model`` (``wav2lip`` or ``wav2lip_gan``) lives under the weights folder."""
    if model not in MODELS:
        raise ConfigError(
            f"unknown lipsync model {model!r}",
            fix=f"set pipeline.lipsync_model to one of: {', '.join(MODELS)}",
        )
    return weights_dir / "wav2lip" / f"{model}.pth"


def load_wav2lip(path: Path, device: torch.device, dtype: torch.dtype) -> Wav2Lip:
    """Read an official Wav2Lip checkpoint, load it strictly, return the net in eval mode.

    Raises ``WeightsError`` for a missing, HTML, truncated or TorchScript file and for a file
    without a ``state_dict`` (the official code's ``KeyError: 'state_dict'``), and
    ``ModelLoadError`` naming any colliding, missing, unexpected or mis-shaped key.
    """
    try:
        ckpt = read_checkpoint(path, "Wav2Lip")
    except WeightsError as exc:
        if "TorchScript" not in exc.problem:
            raise
        raise WeightsError(
            f"{path.name} is a TorchScript export, not an official Wav2Lip state-dict checkpoint",
            file=path,
            fix=TORCHSCRIPT_FIX,
        ) from exc
    net = Wav2Lip()
    try:
        load_strict(net, ckpt, "Wav2Lip", convert_wav2lip_state_dict)
    except KeyError as exc:
        raise WeightsError(
            "the Wav2Lip weights file holds no 'state_dict' with tensors: it is not a Wav2Lip "
            "checkpoint, or an incomplete download",
            file=path,
            fix=f"delete it and {FETCH_FIX}",
        ) from exc
    return net.eval().to(device=device, dtype=dtype)
