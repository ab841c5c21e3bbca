"""How many frames go through the warping network and SPADE generator at once.

The render is the one step whose memory grows fast with the batch: each 512 frame holds the
warped 3D feature volume and the generator's full-resolution activations. ``batch_size: auto``
(the default) picks the batch when a render starts, from the memory free at that moment (models
already loaded) and the device:

- never more than ``SHARE`` of the free memory, at ``FRAME_BYTES`` per frame (measured);
- at most ``DEVICE_CAP`` frames: on the CPU a larger batch barely changes the time per frame
  (measured on 2 shared cores, interleaved in one process: batch 2 took 0.99-1.05x the CPU
  time per frame of batch 8, batch 1 1.08-1.12x), so 2 costs little there; Apple's GPU shares
  the CPU's memory, so it gets the same small cap (not measured); CUDA gains from larger
  batches;
- at least 1; and 1 when the memory cannot be read.

An integer ``batch_size`` in the config is used as it is.
"""

from __future__ import annotations

from pipeline.memory import MemoryFigures
from pipeline.settings import AUTO_BATCH, BatchSize

MIB = 1024 * 1024
# Peak resident growth per frame of a W + G batch in fp32, measured on the CPU: cold renders of
# 8 frames on random official-format checkpoints peaked at 1601, 2129, 3146 and 4862 MiB at
# batch 1, 2, 4 and 8, so (4862 - 1601) / 7 per frame. Half of it in fp16.
FRAME_BYTES = 466 * MIB
SHARE = 0.5  # the rest stays for the OS, the encoder, the other stages and the user's apps
DEVICE_CAP = {"cpu": 2, "mps": 2, "cuda": 16}


def render_batch_size(setting: BatchSize, memory: MemoryFigures | None, device_type: str,
                      dtype_bytes: int = 4) -> int:
    """The render batch for ``setting`` (an int, or "auto") given ``memory`` on ``device_type``."""
    if setting != AUTO_BATCH:
        return max(1, int(setting))
    if memory is None:
        return 1
    per_frame = FRAME_BYTES * dtype_bytes // 4
    fits = int(memory.available * SHARE) // per_frame
    return max(1, min(DEVICE_CAP.get(device_type, 1), fits))
