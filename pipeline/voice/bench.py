"""``facedrop bench --stage voice``: JoyVASA's cost per output second, with full-size random
weights (the cost does not depend on the values), and how far fewer sampling steps move the
motion from the official 500.

Full size: chinese-hubert-base (transformers' ``HubertConfig`` defaults are HuBERT-base: 12
layers, width 768, 512-channel CNN) and the generator with 100-frame windows, 10 carried,
motion 70 and 500 diffusion steps. The generator's width is read from the checkpoint's args at
run time; the published 414,067,833-byte file holds HuBERT-base (about 377.5 MB) plus about
36.5 MB, which is the 8-layer decoder at width 256 (at the code default 512 it would be about
141 MB), so 256 is measured by default. Returns numbers; prints nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.device import device_peak_mb, synchronize
from pipeline.models.joyvasa_dit import DitConfig, JoyVasaDit
from pipeline.models.joyvasa_hubert import build_hubert, hubert_features
from pipeline.rss import peak_rss_mb
from pipeline.voice.denorm import MOTION_DIM
from pipeline.voice.sampler import SAMPLE_RATE, SampleOptions, plan_windows, sample_motion

FULL_FEATURE_DIM = 256
FPS = 25.0
DEFAULT_SECONDS = 3.88  # with the official 0.12 s of padding: exactly one 100-frame window


@dataclass(frozen=True, slots=True)
class VoiceBench:
    """ms per output second (video seconds at 25 fps) and peaks; ``deviation[steps]``: the
    normalised motion's RMS and max difference from the same seed at the full step count."""

    device: str
    dtype: str
    feature_dim: int
    seconds: float
    frames: int
    audio_ms_per_second: float
    motion_ms_per_second: dict[int, float]
    deviation: dict[int, dict[str, float]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    device_peak_mb: float = 0.0


def full_size_models(device: torch.device, dtype: torch.dtype,
                     feature_dim: int = FULL_FEATURE_DIM) -> tuple[JoyVasaDit, torch.nn.Module]:
    """Randomly initialised full-size generator and HuBERT-base on ``device``."""
    gen = torch.Generator().manual_seed(0)
    dit = JoyVasaDit(DitConfig(motion_dim=MOTION_DIM, n_motions=100, n_prev=10,
                               feature_dim=feature_dim, n_diff_steps=500))
    with torch.no_grad():
        for p in dit.parameters():  # zeros from the constructor: give the tokens some signal
            if p.ndim == 3:
                p.copy_(torch.randn(p.shape, generator=gen))
    hubert = build_hubert({}, meta=False)
    return (dit.to(device=device, dtype=dtype).eval(),
            hubert.to(device=device, dtype=dtype).eval())


def benchmark_voice(samples16k: np.ndarray, device: torch.device, dtype: torch.dtype,
                    steps: list[int], *, seconds: float = DEFAULT_SECONDS, seed: int = 0,
                    feature_dim: int = FULL_FEATURE_DIM) -> VoiceBench:
    """Time HuBERT features and sampling at each step count on ``seconds`` of the speech
    (looped); one untimed warm-up window first."""
    n = int(seconds * SAMPLE_RATE)
    reps = math.ceil(n / max(1, len(samples16k)))
    audio = torch.from_numpy(np.tile(samples16k.astype(np.float32), reps)[:n])
    dit, hubert = full_size_models(device, dtype, feature_dim)
    total = dit.cfg.n_diff_steps
    with torch.inference_mode():
        sample_motion(dit, hubert, audio[: SAMPLE_RATE], FPS, "zero",
                      SampleOptions(seed=seed, steps=2))  # warm-up
        plan = plan_windows(audio.to(device=device, dtype=dtype), FPS, dit.cfg.n_motions, "zero")
        synchronize(device)
        start = time.perf_counter()
        for w in range(plan.n_windows):
            a, b = (round(i * dit.cfg.n_motions * plan.unit) for i in (w, w + 1))
            dit.audio_feature_map(hubert_features(hubert, plan.audio[a:b].unsqueeze(0), FPS,
                                                  dit.cfg.n_motions))
        synchronize(device)
        audio_s = time.perf_counter() - start
        video_seconds = plan.n_frames / FPS
        results: dict[int, torch.Tensor] = {}
        motion_ms: dict[int, float] = {}
        for count in sorted(set(steps) | {total}, reverse=True):
            start = time.perf_counter()
            results[count] = sample_motion(dit, hubert, audio, FPS, "zero",
                                           SampleOptions(seed=seed, steps=count)).float().cpu()
            synchronize(device)
            spent = time.perf_counter() - start - audio_s  # the features run inside too
            motion_ms[count] = 1000.0 * max(spent, 0.0) / video_seconds
    reference = results[total]
    deviation = {count: {"rms": float((r - reference).pow(2).mean().sqrt()),
                         "max": float((r - reference).abs().max())}
                 for count, r in results.items() if count != total}
    return VoiceBench(
        device=str(device), dtype=str(dtype).removeprefix("torch."), feature_dim=feature_dim,
        seconds=seconds, frames=plan.n_frames,
        audio_ms_per_second=1000.0 * audio_s / video_seconds,
        motion_ms_per_second={k: motion_ms[k] for k in sorted(motion_ms)},
        deviation=deviation, peak_rss_mb=round(peak_rss_mb(), 1),
        device_peak_mb=round(device_peak_mb(device), 1))
