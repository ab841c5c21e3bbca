"""JoyVASA's motion generator: a diffusion transformer from audio features to LivePortrait motion.

Ported from jdh-algo/JoyVASA at commit 74290f61accfbabef19b195a54b8122141f0e336 ("fix bug in
position encoding", 2025-12-09), ``src/modules/dit_talking_head.py`` (``DitTalkingHead``,
``DenoisingNetwork``, ``DiffusionSchedule``) and ``src/modules/common.py``
(``PositionalEncoding``, ``enc_dec_mask``). The audio encoder (HuBERT) lives in
``pipeline.models.joyvasa_hubert``; the sampling loop in ``pipeline.voice.sampler``.

Motion tokens (``n_prev`` carried + ``n_motions`` current frames, each ``motion_dim`` numbers)
are projected to ``feature_dim``, given the sinusoidal position encoding (the fixed one:
``pe[:, :L]``) plus the diffusion-step embedding, and decoded by an 8-layer
``nn.TransformerDecoder`` that cross-attends the audio features through a diagonal alignment
mask (each frame sees only its own audio frame). The output is the denoised sample
(``target='sample'``) for every token.

Attribute names are the checkpoint's, so its keys load unchanged, except ``audio_encoder.*``
(routed to HuBERT) and ``denoising_net.TE.pe``, which the official loader drops and rebuilds
(``load_model`` pops it); here it is a non-persistent buffer. Pure torch, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.keymap import StateDict, rename

AUDIO_PREFIX = "audio_encoder."
DROPPED_KEYS = ("denoising_net.TE.pe",)  # rebuilt from n_diff_steps, as the official loader does
N_LAYERS = 8  # fixed in the official DenoisingNetwork (not read from the checkpoint's args)
N_HEADS = 8
MLP_RATIO = 4
PE_MAX_LEN = 600
HUBERT_DIM = 768  # the official audio_feature_map is Linear(768, feature_dim)


@dataclass(frozen=True, slots=True)
class DitConfig:
    """The hyper-parameters the official loader reads from the checkpoint's ``args``."""

    motion_dim: int = 70
    n_motions: int = 100
    n_prev: int = 10
    feature_dim: int = 512
    n_diff_steps: int = 500


def sinusoid_table(d_model: int, max_len: int) -> torch.Tensor:
    """(1, max_len, d_model) vanilla sinusoidal encoding, computed as the official code does."""
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)


class PositionalEncoding(nn.Module):
    """``x + pe[:, :L]`` (the 74290f6 fix; before it, one row ``pe[:, L]`` was added to all)."""

    pe: torch.Tensor

    def __init__(self, d_model: int, max_len: int = PE_MAX_LEN, persistent: bool = True) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(d_model, max_len), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1], :]  # dropout of the official module: eval no-op


def alignment_mask(length: int) -> torch.Tensor:
    """(L, L) bool, True = masked: ``enc_dec_mask(L, L, frame_width=1, expansion=0)``."""
    return ~torch.eye(length, dtype=torch.bool)


def schedule_buffers(num_steps: int, s: float = 0.008) -> dict[str, torch.Tensor]:
    """The official cosine ``DiffusionSchedule`` buffers (index 0 is the padded beta_0 = 0)."""
    steps = num_steps + 1
    x = torch.linspace(0, num_steps, steps)
    alpha_bars = torch.cos(((x / num_steps) + s) / (1 + s) * torch.pi * 0.5) ** 2
    alpha_bars = alpha_bars / alpha_bars[0]
    betas = torch.clip(1 - (alpha_bars[1:] / alpha_bars[:-1]), 0.0001, 0.999)
    betas = torch.cat([torch.zeros(1), betas], dim=0)
    alphas = 1 - betas
    log_alphas = torch.log(alphas)
    for i in range(1, log_alphas.shape[0]):  # the official running sum, in float32 order
        log_alphas[i] += log_alphas[i - 1]
    alpha_bars = log_alphas.exp()
    sigmas_flex = torch.sqrt(betas)
    sigmas_inflex = torch.zeros_like(sigmas_flex)
    for i in range(1, sigmas_flex.shape[0]):
        sigmas_inflex[i] = ((1 - alpha_bars[i - 1]) / (1 - alpha_bars[i])) * betas[i]
    return {"betas": betas, "alphas": alphas, "alpha_bars": alpha_bars,
            "sigmas_flex": sigmas_flex, "sigmas_inflex": torch.sqrt(sigmas_inflex)}


class DiffusionSchedule(nn.Module):
    """Holds the schedule as buffers: the checkpoint carries them and they are loaded from it."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    sigmas_flex: torch.Tensor
    sigmas_inflex: torch.Tensor

    def __init__(self, num_steps: int) -> None:
        super().__init__()
        self.num_steps = num_steps
        for name, value in schedule_buffers(num_steps).items():
            self.register_buffer(name, value)


class DenoisingNetwork(nn.Module):
    """Noisy motion (+ carried motion, audio, step) -> denoised motion for every token."""

    alignment_mask: torch.Tensor

    def __init__(self, cfg: DitConfig) -> None:
        super().__init__()
        d = cfg.feature_dim
        self.n_prev = cfg.n_prev
        self.TE = PositionalEncoding(d, max_len=cfg.n_diff_steps + 1, persistent=False)
        self.diff_step_map = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.PE = PositionalEncoding(d)
        self.feature_proj = nn.Linear(cfg.motion_dim, d)
        layer = nn.TransformerDecoderLayer(d_model=d, nhead=N_HEADS,
                                           dim_feedforward=MLP_RATIO * d, activation="gelu",
                                           batch_first=True)
        self.transformer = nn.TransformerDecoder(layer, num_layers=N_LAYERS)
        self.register_buffer("alignment_mask", alignment_mask(cfg.n_prev + cfg.n_motions))
        self.motion_dec = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(),
                                        nn.Linear(d // 2, cfg.motion_dim))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor, prev_motion: torch.Tensor,
                prev_audio: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """motion (N, L, d_m), audio (N, L, d), prev_motion (N, L_p, d_m), prev_audio
        (N, L_p, d), step (N,) long -> (N, L_p + L, d_m)."""
        step_emb = self.diff_step_map(self.TE.pe[0, step]).unsqueeze(1)  # (N, 1, d)
        feats = self.feature_proj(torch.cat([prev_motion, motion], dim=1))  # (N, L_p + L, d)
        feats = self.PE(feats) + step_emb
        memory = torch.cat([prev_audio, audio], dim=1)  # (N, L_p + L, d)
        out = self.transformer(feats, memory, memory_mask=self.alignment_mask)
        return self.motion_dec(out)

    def cross_attention(self, audio: torch.Tensor, prev_audio: torch.Tensor
                        ) -> list[torch.Tensor]:
        """Each decoder layer's cross-attention output (N, L_p + L, d) for this audio.

        The alignment mask lets each token see only its own audio token, so the softmax weight
        is exactly 1 and the attention returns that token's value: ``out_proj(v_proj(memory))``,
        whatever the motion and the diffusion step. A sampler computes it once per window
        instead of once per step (``forward_cached``). Only for the diagonal mask (width 1).
        """
        memory = torch.cat([prev_audio, audio], dim=1)
        d = memory.shape[-1]
        outs = []
        for layer in self.transformer.layers:
            attn = layer.multihead_attn
            w, b = attn.in_proj_weight, attn.in_proj_bias
            value = F.linear(memory, w[2 * d:], None if b is None else b[2 * d:])
            outs.append(attn.out_proj(value))
        return outs

    def forward_cached(self, motion: torch.Tensor, prev_motion: torch.Tensor,
                       step: torch.Tensor, cross: list[torch.Tensor]) -> torch.Tensor:
        """``forward`` with the cross-attention of ``cross_attention(audio, prev_audio)``:
        the same post-norm decoder layers (self-attention, + cross, feed-forward; dropout is an
        eval no-op), without recomputing what does not depend on the step."""
        step_emb = self.diff_step_map(self.TE.pe[0, step]).unsqueeze(1)
        x = self.PE(self.feature_proj(torch.cat([prev_motion, motion], dim=1))) + step_emb
        for layer, ca in zip(self.transformer.layers, cross, strict=True):
            x = layer.norm1(x + layer.self_attn(x, x, x, need_weights=False)[0])
            x = layer.norm2(x + ca)
            x = layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))
        return self.motion_dec(x)


class JoyVasaDit(nn.Module):
    """``DitTalkingHead`` without its audio encoder: the learnt start tokens, the null-audio
    embedding for classifier-free guidance, the audio projection and the denoiser."""

    def __init__(self, cfg: DitConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.feature_dim
        self.audio_feature_map = nn.Linear(HUBERT_DIM, d)
        self.start_audio_feat = nn.Parameter(torch.zeros(1, cfg.n_prev, d))
        self.start_motion_feat = nn.Parameter(torch.zeros(1, cfg.n_prev, cfg.motion_dim))
        self.denoising_net = DenoisingNetwork(cfg)
        self.diffusion_sched = DiffusionSchedule(cfg.n_diff_steps)
        self.null_audio_feat = nn.Parameter(torch.zeros(1, 1, d))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor, prev_motion: torch.Tensor,
                prev_audio: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return self.denoising_net(motion, audio, prev_motion, prev_audio, step)


def split_generator_state_dict(sd: Mapping[str, torch.Tensor]
                               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The checkpoint's ``model`` dict -> (generator keys, ``audio_encoder.*`` keys unprefixed)."""
    audio = {k.removeprefix(AUDIO_PREFIX): v for k, v in sd.items() if k.startswith(AUDIO_PREFIX)}
    rest = {k: v for k, v in sd.items() if not k.startswith(AUDIO_PREFIX)}
    return rest, audio


def convert_dit_state_dict(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """The generator part of the checkpoint -> ``JoyVasaDit``'s state dict.

    Keys keep their names; ``denoising_net.TE.pe`` is dropped (the official loader pops it and
    the network rebuilds it). Anything else that is not ours stays and is named as unexpected by
    the strict load.
    """
    return rename({k: v for k, v in sd.items() if k not in DROPPED_KEYS}, str)
