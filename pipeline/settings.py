"""Settings the pipeline needs, as one frozen value built from the ``pipeline:`` config section.

The daemon's config loader (``watcher.config``) validates YAML and builds this; the pipeline never
reads config files itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

AUTO_BATCH: Final = "auto"
# frames per chunk through the networks: a positive int, or "auto" (the render batch chosen from
# the memory free at render time, see pipeline.liveportrait.render_batch)
BatchSize = int | Literal["auto"]
# under "auto", the chunk of the stages whose frames cost little memory (motion extraction at
# 256, Wav2Lip at 96, compositing): 8 frames of them hold tens of MiB, not the render's GiBs
LIGHT_CHUNK = 8

# the lip-sync engine names (config ``lipsync_model``, job.yaml ``lipsync:``); the registry
# (pipeline.lipsync.registry) has an engine for each. Each Wav2Lip checkpoint is an engine of its
# own name, loaded from ``wav2lip/<name>.pth``.
WAV2LIP_MODELS = ("wav2lip", "wav2lip_gan")
LIPSYNC_MODELS = (*WAV2LIP_MODELS, "musetalk")
# the quality measures with a threshold in the config (pipeline.quality.measures.THRESHOLDS)
QUALITY_LIMITS = ("tracked_share", "landmark_jitter_px", "seam_step", "flicker", "duration_gap_s",
                  "lse_c", "lse_d", "av_offset_frames")


class ProcessKind(StrEnum):
    """How many jobs the process that loads the networks will run: what a compile is paid over
    (``pipeline.compiled.wanted``)."""

    ONE_JOB = "one job"  # facedrop run, bench: a compile would be paid for one job's renders
    WORKER = "worker"  # the daemon's worker child, facedrop worker: loaded once, many jobs


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
    compile: str  # auto | on | off (pipeline.compiled)
    process: ProcessKind  # not from the config: the daemon and `facedrop worker` set WORKER
    max_size: int  # long side of the output video, as the official LivePortrait caps it
    batch_size: BatchSize  # frames per chunk through the networks, or "auto"
    loop_mode: LoopMode
    lipsync_model: str  # a lip-sync engine name (pipeline.lipsync.registry)
    enhance_strength: float  # GFPGAN blend weight, 0..1
    render_cache_mb: int  # size bound of the rendered-crop cache
    max_image_pixels: int
    max_audio_seconds: float
    quality_limits: tuple[tuple[str, float], ...]  # quality measure -> threshold (config quality:)
    # motion: (README "Motion sources"); job.yaml may override each
    motion_source: str  # auto | clip | voice | still (pipeline.motion.source)
    motion_seed: int  # seed of generated motion (voice, still)
    motion_steps: int | None  # voice sampler steps; None: the official 500-step DDPM
    head_motion: float  # factor on the head's motion of generated motion, 0.0-1.5
    face_motion: float  # factor on the face's expression of generated motion, 0.0-1.5

    @property
    def chunk_size(self) -> int:
        """Frames per chunk for the light stages: the set batch size, or ``LIGHT_CHUNK``."""
        return LIGHT_CHUNK if self.batch_size == AUTO_BATCH else max(1, int(self.batch_size))
