"""Sampling JoyVASA's motion: DDPM with classifier-free guidance, window by window.

Ported from jdh-algo/JoyVASA at commit 74290f61accfbabef19b195a54b8122141f0e336:
``src/modules/dit_talking_head.py: DitTalkingHead.sample`` (the reverse process with
``target='sample'``, ``flexibility=0``, no dynamic threshold) and
``src/live_portrait_wmg_wrapper.py: gen_motion_sequence`` (audio padding, the window loop with
10 frames of motion and audio carried, the trimmed last window). Guidance is the official
``incremental`` mode with its one condition, audio: ``uncond + scale * (cond - uncond)``, the
null-audio and audio entries batched together as the official code does.

Randomness follows the official order exactly, drawn from one seeded CPU ``torch.Generator``
and only then moved to the device, so a seed gives the same motion on any device and the same
numbers as the official code run on the CPU after ``torch.manual_seed(seed)``: the start noise
``(1, n_motions, motion_dim)`` is drawn once, in the first window, and reused by every later
window; each window then draws one ``z`` per step for every step but the last.

``steps`` below the checkpoint's ``n_diff_steps`` samples a respaced DDPM (evenly spaced
timesteps, betas recomputed from the kept alpha-bars, the network still told the original
timestep). At the full count the checkpoint's own schedule buffers are used, as officially.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.joyvasa_dit import JoyVasaDit
from pipeline.models.joyvasa_hubert import hubert_features

SAMPLE_RATE = 16000
PAD_BEFORE = 1280  # samples of silence the official loop puts before the audio
PAD_AFTER = 640
CFG_SCALE = 2.8  # argument_config.py default


@dataclass(frozen=True, slots=True)
class Schedule:
    """Per-step coefficients of the reverse process, highest timestep first.

    ``timesteps[i]`` is the network's step input; ``x_prev = c0 * x + c1 * x0 + sigma * z``.
    """

    timesteps: tuple[int, ...]
    c0: torch.Tensor
    c1: torch.Tensor
    sigma: torch.Tensor


def official_schedule(dit: JoyVasaDit) -> Schedule:
    """The official 1..T loop with the checkpoint's buffers (the coefficient formulas of
    ``sample`` for ``target='sample'``, sigma = ``sigmas_inflex``)."""
    sched = dit.diffusion_sched
    ts = list(range(sched.num_steps, 0, -1))
    c0, c1 = [], []
    for t in ts:
        alpha, ab, ab_prev = sched.alphas[t], sched.alpha_bars[t], sched.alpha_bars[t - 1]
        c0.append((1 - ab_prev) * torch.sqrt(alpha) / (1 - ab))
        c1.append((1 - alpha) * torch.sqrt(ab_prev) / (1 - ab))
    return Schedule(tuple(ts), torch.stack(c0), torch.stack(c1), sched.sigmas_inflex[ts])


def respaced_schedule(dit: JoyVasaDit, steps: int) -> Schedule:
    """``steps`` evenly spaced timesteps of the trained 1..T with the DDPM posterior of the
    respaced chain (alpha-bars kept, betas recomputed; improved-diffusion's respacing)."""
    total = dit.diffusion_sched.num_steps
    if steps >= total:
        return official_schedule(dit)
    kept = sorted({max(1, round(1 + i * (total - 1) / (steps - 1))) for i in range(steps)}
                  if steps > 1 else {total})
    abars = dit.diffusion_sched.alpha_bars.double()
    ts, c0, c1, sigma = [], [], [], []
    prev_t = 0
    for t in kept:  # ascending; alpha-bar of the previous kept step (1 before the first)
        ab, ab_prev = abars[t], abars[prev_t]
        alpha = ab / ab_prev
        ts.append(t)
        c0.append((1 - ab_prev) * torch.sqrt(alpha) / (1 - ab))
        c1.append((1 - alpha) * torch.sqrt(ab_prev) / (1 - ab))
        sigma.append(torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - alpha)))
        prev_t = t
    order = list(range(len(ts) - 1, -1, -1))
    return Schedule(tuple(ts[i] for i in order), torch.stack(c0)[order].float(),
                    torch.stack(c1)[order].float(), torch.stack(sigma)[order].float())


@dataclass(frozen=True, slots=True)
class WindowCondition:
    """What every denoising step of one window shares: the carried motion, batched as the
    network sees it (null audio first, then audio, under guidance), and each decoder layer's
    cross-attention output, which depends on the audio alone (``cross_attention``)."""

    prev_motion: torch.Tensor  # (B, n_prev, motion_dim); B = 2 x batch with guidance
    cross: list[torch.Tensor]
    cfg_scale: float | None


def window_condition(dit: JoyVasaDit, audio: torch.Tensor, prev_motion: torch.Tensor,
                     prev_audio: torch.Tensor, cfg_scale: float | None) -> WindowCondition:
    """The step-independent part of ``denoise`` for one window, computed once."""
    if cfg_scale is not None:
        batch, n = audio.shape[0], dit.cfg.n_motions
        null = dit.null_audio_feat.expand(batch, n, -1)
        audio = torch.cat([null, audio])
        prev_motion = torch.cat([prev_motion.expand(batch, -1, -1)] * 2)
        prev_audio = torch.cat([prev_audio.expand(batch, -1, -1)] * 2)
    return WindowCondition(prev_motion, dit.denoising_net.cross_attention(audio, prev_audio),
                           cfg_scale)


def denoise_step(dit: JoyVasaDit, x: torch.Tensor, t: int, cond: WindowCondition
                 ) -> torch.Tensor:
    """The network's guided estimate of the clean window (N, n_motions, motion_dim).

    ``cond.cfg_scale`` None: one conditional pass (the official ``cfg_cond=[]``); otherwise the
    null-audio and audio entries run as one batch, combined ``r0 + s * (r1 - r0)``.
    """
    n = dit.cfg.n_motions
    inputs = x if cond.cfg_scale is None else torch.cat([x, x])
    step = torch.full((inputs.shape[0],), t, dtype=torch.long, device=x.device)
    out = dit.denoising_net.forward_cached(inputs, cond.prev_motion, step, cond.cross)[:, -n:]
    if cond.cfg_scale is None:
        return out
    uncond, cond_out = out.chunk(2)
    return uncond + cond.cfg_scale * (cond_out - uncond)


def denoise(dit: JoyVasaDit, x: torch.Tensor, t: int, audio: torch.Tensor,
            prev_motion: torch.Tensor, prev_audio: torch.Tensor, cfg_scale: float | None
            ) -> torch.Tensor:
    """One guided estimate from scratch (``window_condition`` then ``denoise_step``)."""
    return denoise_step(dit, x, t, window_condition(dit, audio, prev_motion, prev_audio,
                                                    cfg_scale))


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """How the official loop cuts padded audio into windows (all sizes in samples/frames)."""

    audio: torch.Tensor  # padded (S,) 16 kHz
    n_windows: int
    trim: int  # frames dropped from the last window
    unit: float  # samples per frame
    window_samples: int

    @property
    def n_frames(self) -> int:
        return self.n_windows * round(self.window_samples / self.unit) - self.trim


def plan_windows(audio: torch.Tensor, fps: float, n_motions: int, pad_mode: str) -> WindowPlan:
    """Official ``gen_motion_sequence`` padding: 1280 + 640 samples of silence, then the tail
    up to whole windows (zeros, or the last sample when ``pad_mode`` is ``replicate``)."""
    audio = F.pad(audio, (PAD_BEFORE, PAD_AFTER), "constant", 0)
    unit = SAMPLE_RATE / fps
    window = round(unit * n_motions)
    clip_len = int(len(audio) / SAMPLE_RATE * fps)
    n_windows = 1 if clip_len <= n_motions else math.ceil(clip_len / n_motions)
    missing = window * n_windows - len(audio)
    trim = math.ceil(missing / unit)
    if missing > 0:
        value = float(audio[-1]) if pad_mode == "replicate" else 0.0
        audio = F.pad(audio, (0, missing), value=value)
    return WindowPlan(audio, n_windows, max(trim, 0), unit, window)


def official_frame_count(n_samples: int, fps: float, n_motions: int) -> int:
    """Frames the official loop yields for ``n_samples`` of audio (no audio needed)."""
    padded = n_samples + PAD_BEFORE + PAD_AFTER
    unit = SAMPLE_RATE / fps
    window = round(unit * n_motions)
    clip_len = int(padded / SAMPLE_RATE * fps)
    n_windows = 1 if clip_len <= n_motions else math.ceil(clip_len / n_motions)
    return n_windows * n_motions - max(math.ceil((window * n_windows - padded) / unit), 0)


@dataclass(frozen=True, slots=True)
class SampleOptions:
    seed: int
    steps: int | None = None  # None: the checkpoint's full count (500 officially)
    cfg_scale: float | None = CFG_SCALE


def sample_motion(dit: JoyVasaDit, hubert: nn.Module, audio: torch.Tensor, fps: float,
                  pad_mode: str, opts: SampleOptions, max_frames: int | None = None,
                  progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """(S,) 16 kHz audio -> normalised motion (F, motion_dim) as the official loop makes it.

    ``max_frames``: stop after the windows that cover that many frames (later windows cannot
    change earlier ones). Runs on ``dit``'s device and dtype.
    """
    cfg = dit.cfg
    param = dit.audio_feature_map.weight
    device, dtype = param.device, param.dtype
    plan = plan_windows(audio.to(device=device, dtype=dtype), fps, cfg.n_motions, pad_mode)
    n_windows = plan.n_windows
    if max_frames is not None:
        n_windows = min(n_windows, max(1, math.ceil(max_frames / cfg.n_motions)))
    schedule = official_schedule(dit) if opts.steps is None else respaced_schedule(dit, opts.steps)
    c0, c1, sigma = (v.to(device=device, dtype=dtype) for v in
                     (schedule.c0, schedule.c1, schedule.sigma))
    gen = torch.Generator().manual_seed(opts.seed)
    shape = (1, cfg.n_motions, cfg.motion_dim)
    noise = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    prev_motion: torch.Tensor = dit.start_motion_feat
    prev_audio: torch.Tensor = dit.start_audio_feat
    chunks = []
    n_steps = len(schedule.timesteps)
    for w in range(n_windows):
        start = round(w * cfg.n_motions * plan.unit)
        end = round((w + 1) * cfg.n_motions * plan.unit)
        feats = hubert_features(hubert, plan.audio[start:end].unsqueeze(0), fps, cfg.n_motions)
        audio_feat = dit.audio_feature_map(feats)  # (1, n_motions, feature_dim)
        cond = window_condition(dit, audio_feat, prev_motion, prev_audio, opts.cfg_scale)
        # the window's z, one per step but the last, drawn in the official order and moved to
        # the device in one copy (a copy per step would wait for the device every step)
        zs = torch.stack([torch.randn(shape, generator=gen) for _ in range(n_steps - 1)]
                         ).to(device=device, dtype=dtype) if n_steps > 1 else None
        x = noise
        for i, t in enumerate(schedule.timesteps):
            x0 = denoise_step(dit, x, t, cond)
            noise_term = sigma[i] * zs[i] if zs is not None and i < n_steps - 1 else 0 * sigma[i]
            x = c0[i] * x + c1[i] * x0 + noise_term
            if progress is not None:
                progress((w * n_steps + i + 1) / (n_windows * n_steps))
        prev_motion = x[:, -cfg.n_prev:]
        prev_audio = audio_feat[:, -cfg.n_prev:]
        if w == plan.n_windows - 1 and plan.trim > 0:
            x = x[:, : -plan.trim]
        chunks.append(x[0])
    return torch.cat(chunks, dim=0)
