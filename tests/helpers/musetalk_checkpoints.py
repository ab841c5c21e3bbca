"""Random MuseTalk weights in the exact official file formats, for loader and end-to-end tests.

``write_weights_dir(weights_dir)`` writes all eight files of the ``musetalk`` group where the
manifest puts them: ``unet.pth`` (a plain ``UNet2DConditionModel`` state dict, as the official
trainer's ``torch.save(unet.state_dict())``), the VAE's ``diffusion_pytorch_model.bin`` with the
diffusers-0.4 attention names the published file has (``query``/``key``/``value``/``proj_attn``),
whisper's ``pytorch_model.bin`` with ``model.encoder.*`` keys (plus the decoder's when asked),
BiSeNet's ``79999_iter.pth``, and the config JSONs. Weights follow the documented rule of
``tests/helpers/deterministic_weights.py`` (every tensor from its key and shape).

Full-size UNet and VAE files are gigabytes, so tests use ``reduced_configs()``: the same classes
at small widths (same channel counts in and out, the same 8x VAE downsampling, 384-wide audio
tokens), passed to ``MuseTalk.load(..., configs=...)``. Whisper and BiSeNet are full size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.models.bisenet import BiSeNet
from pipeline.musetalk.configs import MuseTalkConfigs, shipped_config
from pipeline.musetalk.files import MuseTalkFiles
from pipeline.musetalk.networks import build_unet, build_vae, build_whisper_encoder
from tests.helpers.deterministic_weights import fill_state_dict

REDUCED_UNET = {
    "block_out_channels": [16, 32, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "attention_head_dim": 8,
}
REDUCED_VAE = {"block_out_channels": [16, 16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8}
_VAE_LEGACY_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def reduced_configs() -> MuseTalkConfigs:
    """The shipped configs with the UNet and VAE narrowed (seconds, not minutes, on a CPU)."""
    unet = {**shipped_config("unet_musetalk_v15.json"), **REDUCED_UNET}
    vae = {**shipped_config("vae_sd_ft_mse.json"), **REDUCED_VAE}
    return MuseTalkConfigs(unet=unet, vae=vae)


def unet_state_dict(config: Mapping[str, Any], gain: float = 1.0) -> dict[str, torch.Tensor]:
    return fill_state_dict(build_unet(config).state_dict(), gain)


def vae_state_dict(config: Mapping[str, Any], legacy_names: bool = True,
                   gain: float = 1.0) -> dict[str, torch.Tensor]:
    """The VAE's weights; with ``legacy_names`` under the published file's attention names
    (values drawn under today's names, so both spellings carry the same numbers)."""
    sd = fill_state_dict(build_vae(config).state_dict(), gain)
    if not legacy_names:
        return sd
    out = {}
    for key, value in sd.items():
        for new, old in _VAE_LEGACY_NAMES.items():
            if ".mid_block.attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
                break
        out[key] = value
    return out


def whisper_state_dict(config: Mapping[str, Any], decoder: bool = False,
                       gain: float = 1.0) -> dict[str, torch.Tensor]:
    """``WhisperForConditionalGeneration``-style keys: ``model.encoder.*`` (+ decoder), each
    tensor drawn under its file key (so the official ``WhisperModel`` gets the same numbers)."""
    enc = build_whisper_encoder(config).state_dict()
    out = fill_state_dict({f"model.encoder.{k}": v for k, v in enc.items()}, gain)
    if decoder:
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperDecoder

        with torch.device("meta"):
            dec = WhisperDecoder(WhisperConfig(**config))
        out.update(fill_state_dict({f"model.decoder.{k}": v for k, v in dec.state_dict().items()},
                                   gain))
        out["proj_out.weight"] = out["model.decoder.embed_tokens.weight"]
    return out


def bisenet_state_dict(gain: float = 1.0) -> dict[str, torch.Tensor]:
    return fill_state_dict(BiSeNet().state_dict(), gain)


def write_configs(weights_dir: Path, configs: MuseTalkConfigs) -> None:
    files = MuseTalkFiles.under(weights_dir)
    for path, cfg in ((files.unet_config, configs.unet), (files.vae_config, configs.vae),
                      (files.whisper_config, configs.whisper),
                      (files.whisper_preprocessor, configs.preprocessor)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cfg, indent=2))


def write_weights_dir(weights_dir: Path, configs: MuseTalkConfigs | None = None,
                      whisper_decoder: bool = False) -> MuseTalkConfigs:
    """All eight official-format files under ``weights_dir``; returns the configs they fit."""
    cfg = reduced_configs() if configs is None else configs
    files = MuseTalkFiles.under(weights_dir)
    write_configs(weights_dir, cfg)
    for path, sd in ((files.unet, unet_state_dict(cfg.unet)),
                     (files.vae, vae_state_dict(cfg.vae)),
                     (files.whisper, whisper_state_dict(cfg.whisper, whisper_decoder)),
                     (files.parsing, bisenet_state_dict())):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(sd, path)
    return cfg
