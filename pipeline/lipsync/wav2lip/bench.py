"""``facedrop bench --stage lipsync``: the stage's cost per frame, part by part, and peak memory.

Runs the real stage code on LivePortrait-style crops of a photo (the crop moved slightly from
frame to frame so tracking does real work) and real audio. Returns numbers; prints nothing.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from pipeline.device import device_peak_mb, synchronize
from pipeline.face.landmarker import Landmarker
from pipeline.lipsync.bench_crops import animated_crops
from pipeline.lipsync.wav2lip.audio import frame_mels
from pipeline.lipsync.wav2lip.stage import LipSyncer, face_input
from pipeline.rss import peak_rss_mb


@dataclass(frozen=True, slots=True)
class LipsyncBench:
    """Milliseconds per output frame for each part (landmarks: per distinct crop) and peaks.

    ``peak_rss_mb`` is the process's lifetime maximum resident size (includes the model);
    ``peak_traced_mb`` the most Python/numpy memory the benchmark itself held (tracemalloc);
    ``device_peak_mb`` the accelerator's peak allocation (CUDA/MPS), 0 on CPU.
    """

    device: str
    dtype: str
    frames: int
    distinct: int
    batch_size: int
    landmarks_ms: float
    mel_ms: float
    generator_ms: float
    blend_ms: float
    total_ms: float
    peak_rss_mb: float
    peak_traced_mb: float
    device_peak_mb: float


def benchmark_lipsync(
    net: torch.nn.Module, landmarker: Landmarker, photo: np.ndarray, samples16k: np.ndarray,
    device: torch.device, dtype: torch.dtype, *, fps: Fraction | float = 25, frames: int = 32,
    distinct: int = 8, batch_size: int = 8,
) -> LipsyncBench:
    """Time the lip-sync stage on ``frames`` output frames cycling over ``distinct`` crops.

    ``net`` is a loaded Wav2Lip (real or random weights: the cost is the same), ``landmarker`` a
    ``FaceLandmarker``, ``photo`` RGB uint8 with a face, ``samples16k`` 16 kHz mono float32 audio
    (at least ``frames / fps`` seconds for meaningful windows). One warm-up batch is not timed.
    """
    crops, first = animated_crops(photo, landmarker, distinct)
    syncer = LipSyncer(net, device, dtype, batch_size, landmarker=landmarker)
    order = [i % distinct for i in range(frames)]
    syncer.generate(np.stack([face_input(crops[0], (0, 0, 512, 512))] * batch_size),
                    np.zeros((batch_size, 80, 16), np.float32))  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        bases = syncer.prepare_sequence(crops, first)
        t1 = time.perf_counter()
        # only the audio these frames cover (+ one 200 ms window), as a chunked run would
        covered = int((frames / float(fps) + 0.2) * 16000)
        mels = frame_mels(samples16k[:covered], fps, frames)
        t2 = time.perf_counter()
        gen_s = blend_s = 0.0
        for start in range(0, frames, batch_size):
            idx = order[start:start + batch_size]
            tg = time.perf_counter()
            faces = np.stack([face_input(crops[k], bases[k].box) for k in idx])
            generated = syncer.generate(faces, mels[start:start + len(idx)])
            synchronize(device)
            tb = time.perf_counter()
            for k, g in zip(idx, generated, strict=True):
                syncer.paste(crops[k], g, bases[k])
            gen_s, blend_s = gen_s + tb - tg, blend_s + time.perf_counter() - tb
        total = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return LipsyncBench(
        device=str(device), dtype=str(dtype).removeprefix("torch."), frames=frames,
        distinct=distinct, batch_size=batch_size,
        landmarks_ms=1e3 * (t1 - t0) / distinct, mel_ms=1e3 * (t2 - t1) / frames,
        generator_ms=1e3 * gen_s / frames, blend_ms=1e3 * blend_s / frames,
        total_ms=1e3 * total / frames, peak_rss_mb=peak_rss_mb(), peak_traced_mb=traced,
        device_peak_mb=device_peak_mb(device),
    )
