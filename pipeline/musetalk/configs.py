"""The model configs facedrop ships (package data ``pipeline/musetalk/data``), copied from the
published files, so the networks are built without reading a hub or a downloaded config.

- ``unet_musetalk_v15.json``: ``TMElyralab/MuseTalk`` ``musetalkV15/musetalk.json``
  (``UNet2DConditionModel``; ``attention_head_dim`` 8 is diffusers' legacy name for 8 heads).
- ``vae_sd_ft_mse.json``: ``stabilityai/sd-vae-ft-mse`` ``config.json`` (``AutoencoderKL``; it
  names no ``scaling_factor``, so diffusers' default 0.18215 applies, as in the official code).
- ``whisper_tiny.json`` / ``whisper_tiny_preprocessor.json``: ``openai/whisper-tiny``
  ``config.json`` (the fields that define the network; generation settings left out) and
  ``preprocessor_config.json`` (without its ``mel_filters`` table, which the feature extractor
  recomputes identically: its constructor overwrites any table it is given).

``MuseTalkConfigs`` also lets tests build the same classes at reduced sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

Config = dict[str, Any]

UNET_FILE = "unet_musetalk_v15.json"
VAE_FILE = "vae_sd_ft_mse.json"
WHISPER_FILE = "whisper_tiny.json"
PREPROCESSOR_FILE = "whisper_tiny_preprocessor.json"


def shipped_config(name: str) -> Config:
    """One shipped config file as a dict (a fresh copy each call)."""
    text = resources.files("pipeline.musetalk").joinpath("data", name).read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{name} is not a JSON object")
    return data


@dataclass(frozen=True)
class MuseTalkConfigs:
    """The four configs the networks are built from; ``shipped()`` is the real model."""

    unet: Config = field(default_factory=lambda: shipped_config(UNET_FILE))
    vae: Config = field(default_factory=lambda: shipped_config(VAE_FILE))
    whisper: Config = field(default_factory=lambda: shipped_config(WHISPER_FILE))
    preprocessor: Config = field(default_factory=lambda: shipped_config(PREPROCESSOR_FILE))

    @classmethod
    def shipped(cls) -> MuseTalkConfigs:
        return cls()
