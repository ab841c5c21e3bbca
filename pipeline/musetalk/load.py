"""Loading MuseTalk's four networks from the official files, strictly, with errors a user can
act on.

Every file is read with ``torch.load(weights_only=True)`` (``pipeline.weights.checkpoint``): the
official ``unet.pth`` is a plain state dict, the VAE's and whisper's ``.bin`` files are the
Hugging Face state-dict pickles, ``79999_iter.pth`` a plain state dict. Networks come from the
shipped configs (``configs.py``); a downloaded config JSON that is present is compared with the
shipped one, so a different model under the official name is named instead of failing obscurely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.models.bisenet import BiSeNet, convert_bisenet_state_dict
from pipeline.musetalk.networks import (
    build_unet,
    build_vae,
    build_whisper_encoder,
    convert_unet_state_dict,
    convert_vae_state_dict,
    convert_whisper_state_dict,
)
from pipeline.weights.checkpoint import load_strict, read_checkpoint

# Values the shipped configs leave to the library's default (sd-vae-ft-mse names no scale).
DEFAULTS: dict[str, Any] = {"scaling_factor": 0.18215}
FETCH_FIX = "run 'facedrop weights fetch musetalk' (offline: 'facedrop weights import DIR')"
N = TypeVar("N", bound=nn.Module)

# Config fields that decide the network's shape or output: a downloaded config must agree.
UNET_FIELDS = ("in_channels", "out_channels", "block_out_channels", "layers_per_block",
               "cross_attention_dim", "attention_head_dim", "down_block_types", "up_block_types",
               "act_fn", "center_input_sample", "downsample_padding", "flip_sin_to_cos",
               "freq_shift", "mid_block_scale_factor", "norm_eps", "norm_num_groups")
VAE_FIELDS = ("block_out_channels", "latent_channels", "layers_per_block", "down_block_types",
              "up_block_types", "in_channels", "out_channels", "act_fn", "norm_num_groups",
              "scaling_factor")
WHISPER_FIELDS = ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                  "num_mel_bins", "max_source_positions", "activation_function",
                  "scale_embedding")
PREPROCESSOR_FIELDS = ("feature_size", "sampling_rate", "hop_length", "n_fft", "chunk_length",
                       "n_samples", "nb_max_frames", "padding_value")


def _checkpoint(path: Path, what: str) -> Mapping[str, object]:
    if not path.is_file():
        raise WeightsError(f"the {what} weights are missing", file=path, fix=FETCH_FIX)
    return read_checkpoint(path, what)


def _load(net: N, path: Path, what: str,
          convert: Callable[[Mapping[str, object]], Mapping[str, torch.Tensor]],
          device: torch.device, dtype: torch.dtype) -> N:
    ckpt = _checkpoint(path, what)
    try:
        load_strict(net, ckpt, what, convert, assign=True)
    except ModelLoadError as exc:
        raise ModelLoadError(exc.problem, fix=exc.fix, file=path) from exc
    leftover = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if leftover:  # a key the strict load accepted but that never received a tensor
        raise ModelLoadError(f"the {what} checkpoint left {', '.join(leftover[:4])} unset",
                             file=path, fix=FETCH_FIX)
    # nn.Module.to itself: diffusers' override only adds a log line about fp32 modules (none here)
    net.requires_grad_(False)  # assigned tensors come in as trainable parameters
    return nn.Module.to(net, device=device, dtype=dtype).eval()


def check_config(path: Path, shipped: Mapping[str, Any], fields: tuple[str, ...],
                 what: str) -> None:
    """If the downloaded config ``path`` exists, it must agree with ``shipped`` on ``fields``."""
    if not path.is_file():
        return
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"the {what} config is not readable JSON ({type(exc).__name__})",
                           file=path, fix=f"delete it and {FETCH_FIX}") from exc
    if not isinstance(found, dict):
        raise WeightsError(f"the {what} config is not a JSON object", file=path, fix=FETCH_FIX)
    differ = [f for f in fields
              if f in found and _norm(found[f]) != _norm(shipped.get(f, DEFAULTS.get(f)))]
    if differ:
        shown = "; ".join(f"{f} is {found[f]!r}, MuseTalk 1.5 uses {shipped.get(f)!r}"
                          for f in differ)
        raise ModelLoadError(f"the {what} config describes a different model: {shown}",
                             file=path, fix=f"use the official files: {FETCH_FIX}")


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def load_unet(path: Path, config: Mapping[str, Any], device: torch.device,
              dtype: torch.dtype) -> nn.Module:
    """``musetalkV15/unet.pth`` into ``UNet2DConditionModel(config)``, eval mode."""
    return _load(build_unet(config), path, "MuseTalk UNet", convert_unet_state_dict, device, dtype)


def load_vae(path: Path, config: Mapping[str, Any], device: torch.device,
             dtype: torch.dtype) -> nn.Module:
    """``sd-vae/diffusion_pytorch_model.bin`` into ``AutoencoderKL(config)``, eval mode."""
    return _load(build_vae(config), path, "sd-vae-ft-mse VAE", convert_vae_state_dict, device,
                 dtype)


def load_whisper_encoder(path: Path, config: Mapping[str, Any], device: torch.device,
                         dtype: torch.dtype) -> nn.Module:
    """The encoder half of ``whisper/pytorch_model.bin`` into ``WhisperEncoder(config)``."""
    return _load(build_whisper_encoder(config), path, "whisper-tiny",
                 convert_whisper_state_dict, device, dtype)


def load_bisenet(path: Path, device: torch.device, dtype: torch.dtype) -> BiSeNet:
    """``face-parse-bisent/79999_iter.pth`` into our pure-torch BiSeNet, eval mode."""
    with torch.device("meta"):
        net = BiSeNet()
    return _load(net, path, "BiSeNet face-parsing", convert_bisenet_state_dict, device, dtype)
