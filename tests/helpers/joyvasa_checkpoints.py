"""JoyVASA weights in exactly the official formats, filled by the deterministic-weights rule.

``write_weights_dir(root, ...)`` writes the ``voice`` group layout (``pipeline/voice/load.py``):

* ``joyvasa/motion_generator/motion_generator_hubert_chinese.pt``: ``torch.save`` of
  ``{'args': argparse.Namespace(...), 'model': OrderedDict, 'iter': int}``; the Namespace holds
  ``pathlib.PosixPath`` values as the published file does. ``model`` = the official
  ``DitTalkingHead`` keys: the generator's (ours, same names) plus ``audio_encoder.*``;
* ``joyvasa/chinese-hubert-base/config.json`` and ``pytorch_model.bin`` (Hugging Face layout,
  the positional convolution's weight norm saved as ``weight_g``/``weight_v`` like the
  published file), holding the same HuBERT tensors as the checkpoint;
* ``joyvasa/motion_template/motion_template.pkl``: a plain pickle of float32 numpy arrays with
  the official ``04_gen_template.py`` keys.

Every parameter comes from ``tests.helpers.deterministic_weights.fill_state_dict`` under its
file key; the schedule, alignment mask and position table stay the real ones;
``denoising_net.TE.pe`` is random on purpose (the official loader drops it). The scratch script
that runs the official code imports this file, so both sides load the very same files.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections import OrderedDict
from pathlib import Path, PosixPath
from typing import Any

import numpy as np
import torch

from pipeline.models.joyvasa_dit import DitConfig, JoyVasaDit
from pipeline.models.joyvasa_hubert import build_hubert
from tests.helpers.deterministic_weights import fill_state_dict

# A small chinese-hubert-base: the same kind of network (hidden size 768 is fixed by JoyVASA),
# with thin convolutions and two layers so a window runs in milliseconds.
SMALL_HUBERT: dict[str, Any] = {
    "architectures": ["HubertModel"], "model_type": "hubert", "hidden_size": 768,
    "num_hidden_layers": 2, "num_attention_heads": 12, "intermediate_size": 256,
    "hidden_act": "gelu", "conv_dim": [32] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False, "feat_extract_norm": "group",
    "feat_extract_activation": "gelu", "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False,
    "feat_proj_layer_norm": True, "layer_norm_eps": 1e-5, "mask_time_prob": 0.05,
}
SMALL_DIT = DitConfig(motion_dim=70, n_motions=100, n_prev=10, feature_dim=32, n_diff_steps=10)
REAL_BUFFERS = ("denoising_net.PE.pe", "denoising_net.alignment_mask")


def official_args(cfg: DitConfig, root: Path) -> argparse.Namespace:
    """A Namespace like the published one: architecture fields plus paths (PosixPath)."""
    return argparse.Namespace(
        motion_feat_dim=cfg.motion_dim, n_motions=cfg.n_motions, n_prev_motions=cfg.n_prev,
        feature_dim=cfg.feature_dim, n_diff_steps=cfg.n_diff_steps, audio_model="hubert_zh",
        fps=25, pad_mode="zero", use_indicator=False, diff_schedule="cosine",
        target="sample", architecture="decoder", cfg_mode="incremental",
        guiding_conditions="audio,", exp_dir=PosixPath(root / "experiments"),
        data_root=PosixPath("/data/joyvasa"),
    )


def generator_state_dict(cfg: DitConfig, hubert_config: dict[str, Any]
                         ) -> OrderedDict[str, torch.Tensor]:
    """The official ``DitTalkingHead.state_dict()`` keys, filled by the rule."""
    dit = JoyVasaDit(cfg)
    real = dit.state_dict()
    hub = build_hubert(hubert_config, meta=False).state_dict()
    template: dict[str, torch.Tensor] = {f"audio_encoder.{_hf_name(k)}": v for k, v in hub.items()}
    template.update(real)
    template["denoising_net.TE.pe"] = dit.denoising_net.TE.pe  # persistent in the official file
    out = fill_state_dict(template)
    for key in (*REAL_BUFFERS, *(k for k in real if k.startswith("diffusion_sched."))):
        out[key] = real[key].clone()
    return OrderedDict(sorted(out.items()))


def template_stats(seed: int = 7) -> dict[str, np.ndarray]:
    """Plausible template statistics (float32, the official keys the inference reads, and a
    few it does not)."""
    g = np.random.default_rng(seed)
    stats: dict[str, np.ndarray] = {
        "mean_exp": (g.standard_normal(63) * 0.01).astype(np.float32),
        "std_exp": (0.01 + g.random(63) * 0.02).astype(np.float32),
        "min_scale": np.array([1.2], np.float32), "max_scale": np.array([1.9], np.float32),
        "min_t": np.array([-0.1, -0.1, 0.0], np.float32),
        "max_t": np.array([0.1, 0.1, 0.0], np.float32),
        "mean_R": np.eye(3, dtype=np.float32).reshape(9),
    }
    for name, span in (("pitch", 20.0), ("yaw", 30.0), ("roll", 15.0)):
        stats[f"min_{name}"] = np.array([-span], np.float32)
        stats[f"max_{name}"] = np.array([span], np.float32)
    return stats


def write_weights_dir(root: Path, cfg: DitConfig = SMALL_DIT,
                      hubert_config: dict[str, Any] | None = None,
                      *, audio_in_generator: bool = True) -> dict[str, torch.Tensor]:
    """Write the three parts under ``root``; returns the generator's ``model`` dict."""
    hcfg = dict(SMALL_HUBERT if hubert_config is None else hubert_config)
    base = root / "joyvasa"
    for sub in ("motion_generator", "motion_template", "chinese-hubert-base"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    sd = generator_state_dict(cfg, hcfg)
    hub = {k.removeprefix("audio_encoder."): v for k, v in sd.items()
           if k.startswith("audio_encoder.")}
    torch.save(hub, base / "chinese-hubert-base" / "pytorch_model.bin")
    (base / "chinese-hubert-base" / "config.json").write_text(json.dumps(hcfg, indent=2))
    (base / "chinese-hubert-base" / "preprocessor_config.json").write_text(json.dumps(
        {"feature_size": 1, "sampling_rate": 16000, "padding_value": 0.0,
         "do_normalize": True, "return_attention_mask": False}))
    model = sd if audio_in_generator else OrderedDict(
        (k, v) for k, v in sd.items() if not k.startswith("audio_encoder."))
    torch.save({"args": official_args(cfg, root), "model": model, "iter": 1000},
               base / "motion_generator" / "motion_generator_hubert_chinese.pt")
    with (base / "motion_template" / "motion_template.pkl").open("wb") as f:
        pickle.dump(template_stats(), f)
    return dict(sd)


def _hf_name(key: str) -> str:
    """Our HubertModel key -> the published files' spelling (weight norm as weight_g/_v)."""
    return (key.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"))
