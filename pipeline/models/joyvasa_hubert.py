"""JoyVASA's audio encoder: chinese-hubert-base through transformers' ``HubertModel``, with the
official resampling of its 50 Hz features to the video frame rate.

Ported from jdh-algo/JoyVASA at commit 74290f61accfbabef19b195a54b8122141f0e336:
``src/modules/hubert.py`` (the ``HubertModel`` subclass whose forward resamples the CNN features
before the transformer), ``src/modules/wav2vec2.py: linear_interpolation``,
``src/modules/common.py: pad_audio`` and ``dit_talking_head.py: extract_audio_feature``
(features for ``2 * frames``, then linear interpolation down to ``frames`` and the
``audio_feature_map`` projection, which lives in ``pipeline.models.joyvasa_dit``).

The network is transformers' own ``HubertModel`` built from the model's ``config.json`` (never a
hub name; offline switches set first), in eager attention: the official forward forces
``output_attentions=True``, which runs the eager path. Eval mode only (no masking, no dropout).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.keymap import StateDict, rename
from pipeline.musetalk.offline import force_offline

AUDIO_UNIT = 320  # samples per HuBERT frame at 16 kHz (50 Hz)
PAD_THRESHOLD = 80
FEATURE_HZ = 50

# The positional convolution's weight norm is saved as weight_g/weight_v by older torch and as
# parametrizations by newer: both spellings name the same two tensors.
_WEIGHT_NORM = re.compile(r"^(.*pos_conv_embed\.conv)\.(weight_g|weight_v|parametrizations\.weight"
                          r"\.original0|parametrizations\.weight\.original1)$")
_WN_PART = {"weight_g": 0, "parametrizations.weight.original0": 0,
            "weight_v": 1, "parametrizations.weight.original1": 1}


def build_hubert(config: Mapping[str, Any], meta: bool = True) -> nn.Module:
    """transformers' ``HubertModel`` of ``config`` (meta tensors unless ``meta=False``), eval."""
    force_offline()
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
    cfg._attn_implementation = "eager"  # what the official output_attentions=True forward runs
    with torch.device("meta" if meta else "cpu"):
        net = HubertModel(cfg)
    net.requires_grad_(False)
    return net.eval()


def pad_audio(audio: torch.Tensor) -> torch.Tensor:
    """(N, S) -> reflect-padded (N, S') so the CNN yields whole frames (official ``pad_audio``).

    The official function pads ``side // 2`` by reflection twice, then 1 sample by replication
    when ``side`` is odd; kept as is.
    """
    n_units = audio.shape[1] // AUDIO_UNIT
    side = math.ceil((AUDIO_UNIT * n_units + PAD_THRESHOLD - audio.shape[1]) / 2)
    if side >= 0:
        reflect, replicate = side // 2, side % 2
        if reflect > 0:
            audio = F.pad(audio, (reflect, reflect), mode="reflect")
            audio = F.pad(audio, (reflect, reflect), mode="reflect")
        if replicate > 0:
            audio = F.pad(audio, (1, 1), mode="replicate")
    return audio


def hubert_features(net: nn.Module, audio: torch.Tensor, fps: float, frames: int) -> torch.Tensor:
    """(N, S) 16 kHz audio -> (N, frames, hidden) HuBERT features at ``fps``.

    Official ``extract_audio_feature`` + ``HubertModel.forward``: the transformer runs on
    ``2 * frames`` CNN frames (cut to ``round(2 * frames * 50 / fps)``, then linearly resampled),
    and its output is linearly resampled to ``frames``.
    """
    inner = 2 * frames
    feats = _part(net, "feature_extractor")(pad_audio(audio))  # (N, C, L) at 50 Hz
    feats = feats[:, :, : round(inner * FEATURE_HZ / fps)]
    feats = F.interpolate(feats, size=inner, align_corners=False, mode="linear")
    hidden = _part(net, "feature_projection")(feats.transpose(1, 2))  # (N, 2F, hidden)
    hidden = _part(net, "encoder")(hidden).last_hidden_state  # (N, 2F, hidden)
    hidden = F.interpolate(hidden.transpose(1, 2), size=frames, align_corners=False, mode="linear")
    return hidden.transpose(1, 2)  # (N, F, hidden)


def _part(net: nn.Module, name: str) -> nn.Module:
    part = getattr(net, name)
    if not isinstance(part, nn.Module):
        raise TypeError(f"{type(net).__name__}.{name} is not a module")
    return part


def convert_hubert_state_dict(sd: Mapping[str, torch.Tensor], ours: Mapping[str, object]
                              ) -> StateDict:
    """HuBERT weights (the generator checkpoint's ``audio_encoder.*`` without the prefix, or the
    Hugging Face ``pytorch_model.bin``) -> our ``HubertModel``'s state dict.

    ``ours`` is the network's own state dict (for its key names): the positional convolution's
    weight-norm pair is renamed to whichever spelling the installed torch uses. Every other key
    keeps its name; a ``hubert.`` prefix (a model saved from a wrapper) is stripped.
    """
    parametrized = any(".parametrizations.weight.original0" in k for k in ours)

    def key(name: str) -> str:
        name = name.removeprefix("hubert.")
        m = _WEIGHT_NORM.match(name)
        if m is None:
            return name
        part = _WN_PART[m.group(2)]
        if parametrized:
            return f"{m.group(1)}.parametrizations.weight.original{part}"
        return f"{m.group(1)}.{('weight_g', 'weight_v')[part]}"

    return rename(sd, key)
