"""Where MuseTalk's files live under ``weights_dir``: the official ``models/`` layout under
``musetalk/`` (``download_weights.sh`` puts sd-vae-ft-mse in ``sd-vae`` and whisper-tiny in
``whisper``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = "musetalk"
RELPATHS = {
    "unet": f"{ROOT}/musetalkV15/unet.pth",
    "unet_config": f"{ROOT}/musetalkV15/musetalk.json",
    "vae": f"{ROOT}/sd-vae/diffusion_pytorch_model.bin",
    "vae_config": f"{ROOT}/sd-vae/config.json",
    "whisper": f"{ROOT}/whisper/pytorch_model.bin",
    "whisper_config": f"{ROOT}/whisper/config.json",
    "whisper_preprocessor": f"{ROOT}/whisper/preprocessor_config.json",
    "parsing": f"{ROOT}/face-parse-bisent/79999_iter.pth",
}


@dataclass(frozen=True)
class MuseTalkFiles:
    """The eight files of the ``musetalk`` weights group (the manifest names the same paths)."""

    unet: Path
    unet_config: Path
    vae: Path
    vae_config: Path
    whisper: Path
    whisper_config: Path
    whisper_preprocessor: Path
    parsing: Path

    @classmethod
    def under(cls, weights_dir: Path) -> MuseTalkFiles:
        return cls(**{name: weights_dir / rel for name, rel in RELPATHS.items()})
