"""Per-call timings of LivePortrait's networks on one device (for ``facedrop bench``).

Batch 1, random inputs of the real shapes, a warm-up call, then the median of ``repeats``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from pipeline.device import synchronize
from pipeline.liveportrait.nets import LivePortraitNets


def _median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: first-call allocation and kernel selection
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def benchmark_networks(
    nets: LivePortraitNets, device: torch.device | str, dtype: torch.dtype, repeats: int = 3
) -> dict[str, float]:
    """Median ms per batch-1 call of each network, plus ``render_frame`` (W then G).

    Keys: appearance (F, once per photo), motion (M, once per driving frame, cached),
    warping (W), generator (G), stitching (S + R_lip + R_eyes together), render_frame (W + G:
    the per-rendered-frame cost).
    """
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).to(device=dev, dtype=dtype)

    image = rand(1, 3, 256, 256)
    f_s = rand(1, 32, 16, 64, 64) * 2 - 1
    kp_s = rand(1, 21, 3) - 0.5
    kp_d = kp_s + 0.05 * (rand(1, 21, 3) - 0.5)
    feature = rand(1, 256, 64, 64) * 2 - 1
    stitch_in, lip_in, eye_in = rand(1, 126), rand(1, 65), rand(1, 66)
    calls: dict[str, Callable[[], object]] = {
        "appearance": lambda: nets.appearance(image),
        "motion": lambda: nets.motion(image),
        "warping": lambda: nets.warping(f_s, kp_driving=kp_d, kp_source=kp_s),
        "generator": lambda: nets.generator(feature),
        "stitching": lambda: (nets.stitching(stitch_in), nets.retarget_lip(lip_in),
                              nets.retarget_eye(eye_in)),
        "render_frame": lambda: nets.generator(
            nets.warping(f_s, kp_driving=kp_d, kp_source=kp_s).out
        ),
    }
    with torch.inference_mode():
        return {name: _median_ms(fn, dev, repeats) for name, fn in calls.items()}
