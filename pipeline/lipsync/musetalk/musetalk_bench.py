"""``facedrop bench --lipsync musetalk``: the MuseTalk engine's cost per frame, part by part.

Runs the real engine on LivePortrait-style crops of a photo and real speech, with an empty
avatar cache (so the per-crop preparation is measured cold): the UNet, the VAE decoder, the
audio features (whisper-tiny encoder + windows) and the blend (resize to the box + mask) per
output frame, and the preparation (landmarks, VAE encoder, face parser) per distinct crop.
Returns numbers; prints nothing.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from pipeline.device import device_peak_mb, synchronize
from pipeline.face.landmarker import Landmarker
from pipeline.lipsync.bench_crops import animated_crops
from pipeline.lipsync.engine import MouthPatch, apply_mouth
from pipeline.lipsync.musetalk import musetalk_crop as mcrop
from pipeline.lipsync.musetalk.avatar_cache import AvatarCache
from pipeline.lipsync.musetalk.musetalk_engine import MuseTalkEngine
from pipeline.musetalk.audio import SAMPLE_RATE, SEGMENT_SAMPLES
from pipeline.rss import peak_rss_mb


@dataclass(frozen=True, slots=True)
class MuseTalkBench:
    """Milliseconds per output frame for each part (prepare: per distinct crop) and peaks."""

    device: str
    dtype: str
    frames: int
    distinct: int
    batch_size: int
    prepare_ms: float
    audio_ms: float
    unet_ms: float
    vae_decoder_ms: float
    blend_ms: float
    total_ms: float
    peak_rss_mb: float
    device_peak_mb: float


def benchmark_musetalk(
    engine: MuseTalkEngine, landmarker: Landmarker, photo: np.ndarray, samples16k: np.ndarray,
    *, fps: Fraction | float = 25, frames: int = 16, distinct: int = 4, batch_size: int = 8,
) -> MuseTalkBench:
    """Time ``frames`` output frames cycling over ``distinct`` crops. One warm-up batch of the
    UNet and decoder is not timed. The engine's avatar cache is swapped for an empty one.
    ``total_ms``: per output frame, with the preparation spread over the frames and the audio
    features at their per-frame cost in a 30 s segment."""
    model, device = engine.model, engine.model.device
    crops, first = animated_crops(photo, landmarker, distinct)
    order = [i % distinct for i in range(frames)]
    with tempfile.TemporaryDirectory(prefix="facedrop-bench-") as tmp:
        cold = AvatarCache(Path(tmp), engine.version, engine.cache.limit_bytes)
        engine = replace_cache(engine, cold)
        latents = torch.zeros((batch_size, 8, 32, 32), dtype=model.dtype)
        model.decode(model.unet(latents, torch.zeros((batch_size, 50, 384))))  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        prepared = engine.prepare(crops, first)
        t1 = time.perf_counter()
        # whisper encodes 30 s segments whatever their length: the cost per frame is a full
        # segment's encoder pass over the frames it covers
        segment = np.resize(np.asarray(samples16k, np.float32), SEGMENT_SAMPLES)
        n_segment = int(SEGMENT_SAMPLES / SAMPLE_RATE * float(fps))
        features = engine.audio_features(segment, fps, n_segment)
        synchronize(device)
        t2 = time.perf_counter()
        unet_s = decode_s = blend_s = 0.0
        for start in range(0, frames, batch_size):
            idx = order[start:start + batch_size]
            tu = time.perf_counter()
            pred = model.unet(torch.stack([prepared[k].latents for k in idx]),
                              features[start:start + len(idx)])
            synchronize(device)
            td = time.perf_counter()
            faces = model.decode(pred)
            tb = time.perf_counter()
            for k, face in zip(idx, faces, strict=True):
                p = prepared[k]
                apply_mouth(crops[k], MouthPatch(p.box, mcrop.resize_generated(face, p.box),
                                                 p.mask))
            unet_s += td - tu
            decode_s += tb - td
            blend_s += time.perf_counter() - tb
        total = time.perf_counter() - t0 - (t2 - t1)
    return MuseTalkBench(
        device=str(device), dtype=str(model.dtype).removeprefix("torch."), frames=frames,
        distinct=distinct, batch_size=batch_size, prepare_ms=1e3 * (t1 - t0) / distinct,
        audio_ms=1e3 * (t2 - t1) / n_segment, unet_ms=1e3 * unet_s / frames,
        vae_decoder_ms=1e3 * decode_s / frames, blend_ms=1e3 * blend_s / frames,
        total_ms=1e3 * total / frames + 1e3 * (t2 - t1) / n_segment, peak_rss_mb=peak_rss_mb(),
        device_peak_mb=device_peak_mb(device),
    )


def replace_cache(engine: MuseTalkEngine, cache: AvatarCache) -> MuseTalkEngine:
    """The same loaded engine with another avatar cache (the resident one is left as it is)."""
    return MuseTalkEngine(engine.model, engine.landmarker, cache, engine.batch_size, engine.name,
                          engine.version)


