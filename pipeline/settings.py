"""Settings the pipeline needs, as one frozen value built from the ``pipeline:`` config section.

The daemon's config loader (``watcher.config``) validates YAML and builds this; the pipeline never
reads config files itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

LIPSYNC_MODELS = ("wav2lip", "wav2lip_gan")  # the one list: config choices and checkpoint names


class LoopMode(StrEnum):
    """How a driving clip shorter than the audio is extended."""

    PINGPONG = "pingpong"  # forward, backward, forward...: no jump at the seam
    REPEAT = "repeat"  # forward, forward...


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything the pipeline stages read; paths are absolute.

    No defaults here: every value comes from the config, whose one source of defaults is
    ``watcher/data/default.yaml`` (tests build theirs from it too).
    """

    weights_dir: Path
    cache_dir: Path
    drivers_dir: Path
    default_driver: str  # library clip name used when a job names none
    device: str  # auto | mps | cuda | cpu
    dtype: str  # auto | fp32 | fp16
    max_size: int  # long side of the output video, as the official LivePortrait caps it
    batch_size: int  # frames per chunk through the networks
    loop_mode: LoopMode
    lipsync_model: str  # wav2lip | wav2lip_gan
    enhance_strength: float  # GFPGAN blend weight, 0..1
    render_cache_mb: int  # size bound of the rendered-crop cache
    max_image_pixels: int
    max_audio_seconds: float
