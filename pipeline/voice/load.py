"""Loading JoyVASA (generator, HuBERT, motion template) from the ``voice`` weights group.

Layout under ``weights_dir`` (the official ``pretrained_weights/`` names under ``joyvasa/``):
``joyvasa/motion_generator/motion_generator_hubert_chinese.pt``,
``joyvasa/motion_template/motion_template.pkl`` and ``joyvasa/chinese-hubert-base/`` with the
Hugging Face ``config.json`` and ``pytorch_model.bin``.

The official loader (JoyVASA 74290f61accfbabef19b195a54b8122141f0e336, ``src/utils/helper.py``)
builds HuBERT from the Hugging Face folder and then loads the generator checkpoint into the whole
``DitTalkingHead`` with ``strict=False``, so the checkpoint's ``audio_encoder.*`` weights replace
the downloaded ones. Here the same result comes strictly: when the checkpoint carries
``audio_encoder.*`` keys they must be the complete encoder; when it carries none, the Hugging
Face weights file is loaded instead, as complete. Missing, unexpected, colliding and mis-shaped
keys are named (``pipeline.weights.checkpoint.load_strict``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.models.joyvasa_dit import (
    HUBERT_DIM,
    JoyVasaDit,
    convert_dit_state_dict,
    sinusoid_table,
    split_generator_state_dict,
)
from pipeline.models.joyvasa_hubert import build_hubert, convert_hubert_state_dict
from pipeline.voice.checkpoint import FETCH_FIX, GeneratorArgs, read_generator
from pipeline.voice.denorm import MotionStats, load_stats
from pipeline.weights.checkpoint import load_strict, read_state_dict

ROOT = "joyvasa"
RELPATHS = {
    "generator": f"{ROOT}/motion_generator/motion_generator_hubert_chinese.pt",
    "template": f"{ROOT}/motion_template/motion_template.pkl",
    "hubert_config": f"{ROOT}/chinese-hubert-base/config.json",
    "hubert_weights": f"{ROOT}/chinese-hubert-base/pytorch_model.bin",
    "hubert_preprocessor": f"{ROOT}/chinese-hubert-base/preprocessor_config.json",
}


@dataclass(frozen=True, slots=True)
class VoiceFiles:
    generator: Path
    template: Path
    hubert_config: Path
    hubert_weights: Path
    hubert_preprocessor: Path

    @classmethod
    def under(cls, weights_dir: Path) -> VoiceFiles:
        return cls(**{name: weights_dir / rel for name, rel in RELPATHS.items()})


@dataclass(frozen=True, slots=True)
class JoyVasaModels:
    """Everything generation needs, resident on one device."""

    dit: JoyVasaDit
    hubert: nn.Module
    stats: MotionStats
    args: GeneratorArgs


def read_hubert_config(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise WeightsError("the chinese-hubert-base config.json is missing", file=path,
                           fix=FETCH_FIX)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"the chinese-hubert-base config.json cannot be read ({exc})",
                           file=path, fix=FETCH_FIX) from exc
    if not isinstance(config, dict) or config.get("hidden_size") != HUBERT_DIM:
        raise WeightsError("the chinese-hubert-base config.json is not a HuBERT-base config "
                           f"(JoyVASA needs hidden_size {HUBERT_DIM})", file=path,
                           fix=FETCH_FIX)
    return config


def load_models(files: VoiceFiles, device: torch.device,
                dtype: torch.dtype = torch.float32) -> JoyVasaModels:
    """Read, convert and strictly load all three parts; typed errors name the file at fault."""
    ckpt = read_generator(files.generator)
    generator_sd, audio_sd = split_generator_state_dict(ckpt.model)
    with torch.device("meta"):
        dit = JoyVasaDit(ckpt.args.dit)
    _load(dit, generator_sd, "JoyVASA motion generator", convert_dit_state_dict, files.generator)
    dit.denoising_net.TE.pe = _rebuilt_te(dit)  # non-persistent: the official loader rebuilds it
    hubert = build_hubert(read_hubert_config(files.hubert_config))
    if audio_sd:
        source, sd = files.generator, audio_sd
    else:
        source, sd = files.hubert_weights, read_state_dict(files.hubert_weights,
                                                           "chinese-hubert-base")
    ours = hubert.state_dict()
    _load(hubert, sd, "chinese-hubert-base audio encoder",
          lambda s: convert_hubert_state_dict(s, ours), source)
    stats = load_stats(files.template)
    dit = nn.Module.to(dit.requires_grad_(False).eval(), device=device, dtype=dtype)
    hubert = nn.Module.to(hubert.requires_grad_(False).eval(), device=device, dtype=dtype)
    return JoyVasaModels(dit, hubert, stats, ckpt.args)


def _rebuilt_te(dit: JoyVasaDit) -> torch.Tensor:
    return sinusoid_table(dit.cfg.feature_dim, dit.cfg.n_diff_steps + 1)


Convert = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


def _load(net: nn.Module, sd: Mapping[str, torch.Tensor], what: str, convert: Convert,
          path: Path) -> None:
    try:
        load_strict(net, sd, what, convert, assign=True)
    except ModelLoadError as exc:
        raise ModelLoadError(exc.problem, fix=exc.fix, file=path) from exc
    persistent = set(net.state_dict())
    leftover = [n for n, t in [*net.named_parameters(), *net.named_buffers()]
                if t.is_meta and n in persistent]
    if leftover:
        raise ModelLoadError(f"the {what} checkpoint left {', '.join(leftover[:4])} unset",
                             file=path, fix=FETCH_FIX)
