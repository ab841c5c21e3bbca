"""MuseTalk's three library networks, built from configs, and their checkpoint key conversions.

The official code builds them with the same classes: ``UNet2DConditionModel(**musetalk.json)``,
``AutoencoderKL.from_pretrained(sd-vae)`` and ``WhisperModel.from_pretrained(whisper)`` of which
it runs ``.encoder`` only. Here the encoder is built alone (the decoder's 29 M parameters are
never used). Networks are built on the meta device: the checkpoint's tensors are assigned to them
(``load_strict(..., assign=True)``), so an 860 M-parameter UNet is never randomly initialised.

The key conversions are pure functions of the file's state dict:
- UNet ``unet.pth``: the official trainer saves ``unet.state_dict()``, so keys load unchanged
  (a DataParallel ``module.`` prefix is stripped).
- VAE ``diffusion_pytorch_model.bin``: written by diffusers 0.4, whose mid-block attention used
  ``query`` / ``key`` / ``value`` / ``proj_attn``; today's names are ``to_q`` / ``to_k`` /
  ``to_v`` / ``to_out.0`` (the same rename diffusers' ``from_pretrained`` applies on load).
- whisper ``pytorch_model.bin``: a ``WhisperForConditionalGeneration`` file; the encoder's keys
  are ``model.encoder.*`` (``encoder.*`` in a bare ``WhisperModel`` file). Decoder keys and the
  output projection are set aside by name; any other key is reported as unexpected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pipeline.models.keymap import rename
from pipeline.musetalk.offline import force_offline

WRAPPER_PREFIX = "module."
_VAE_LEGACY = re.compile(
    r"^((?:en|de)coder\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$"
)
_VAE_RENAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
WHISPER_ENCODER_PREFIXES = ("model.encoder.", "encoder.")
# Keys of the full Whisper file that are not the encoder's; they are left out, by name.
_WHISPER_OTHER = re.compile(r"^(model\.)?decoder\.|^proj_out\.")


def _tensors(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}


def convert_unet_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """``unet.pth`` -> the UNet's state dict (pure; colliding keys raise KeyConversionError)."""
    return rename(_tensors(ckpt), lambda k: k.removeprefix(WRAPPER_PREFIX))


def _vae_key(key: str) -> str:
    key = key.removeprefix(WRAPPER_PREFIX)
    m = _VAE_LEGACY.match(key)
    return f"{m.group(1)}.{_VAE_RENAMES[m.group(2)]}.{m.group(3)}" if m else key


def convert_vae_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """``diffusion_pytorch_model.bin`` -> the VAE's state dict (legacy attention names renamed;
    a file with both spellings of one key raises KeyConversionError)."""
    return rename(_tensors(ckpt), _vae_key)


def convert_whisper_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Whisper ``pytorch_model.bin`` -> the encoder's state dict.

    Decoder and ``proj_out`` keys are dropped; every other key keeps its name minus the encoder
    prefix, so a key that is not the encoder's shows up as unexpected in the strict load.
    """
    kept = {k: v for k, v in _tensors(ckpt).items() if not _WHISPER_OTHER.match(k)}

    def strip(key: str) -> str:
        for prefix in WHISPER_ENCODER_PREFIXES:
            if key.startswith(prefix):
                return key.removeprefix(prefix)
        return key

    return rename(kept, strip)


def build_unet(config: Mapping[str, Any], meta: bool = True) -> nn.Module:
    """The UNet of ``config`` (meta tensors unless ``meta=False``), in eval mode."""
    force_offline()
    from diffusers import UNet2DConditionModel

    with _device(meta):
        net = UNet2DConditionModel.from_config(dict(config))
    return _frozen(net)


def build_vae(config: Mapping[str, Any], meta: bool = True) -> nn.Module:
    """The VAE of ``config`` (meta tensors unless ``meta=False``), in eval mode."""
    force_offline()
    from diffusers import AutoencoderKL

    with _device(meta):
        net = AutoencoderKL.from_config(dict(config))
    return _frozen(net)


def build_whisper_encoder(config: Mapping[str, Any], meta: bool = True) -> nn.Module:
    """The Whisper encoder of ``config`` (meta tensors unless ``meta=False``), in eval mode."""
    force_offline()
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = WhisperConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
    with _device(meta):
        net = WhisperEncoder(cfg)
    return _frozen(net)


def _device(meta: bool) -> torch.device:
    return torch.device("meta" if meta else "cpu")


def _frozen(net: object) -> nn.Module:
    if not isinstance(net, nn.Module):  # the libraries' classes are torch modules
        raise TypeError(f"{type(net).__name__} is not a torch module")
    net.requires_grad_(False)
    return net.eval()
