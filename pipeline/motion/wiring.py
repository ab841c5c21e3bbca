"""The voice-motion provider this build uses (the one place that names an implementation)."""

from __future__ import annotations

import torch

from pipeline.motion.voice import VoiceMotion
from pipeline.settings import PipelineSettings


def built_in_voice(settings: PipelineSettings, device: torch.device) -> VoiceMotion:
    """The ``VoiceMotion`` the runner asks for voice motion: JoyVASA, loaded on first use and
    resident after. Without its weights ``missing()`` says so: then ``auto`` falls back to the
    default clip, else ``still``, and ``motion: voice`` waits for the weights like any missing
    weights. Sampled motion is kept in the cache folder (``VoiceMotionStore``), so a rerun of
    a job samples nothing."""
    from pipeline.voice.motion_store import VoiceMotionStore
    from pipeline.voice.provider import JoyVasaMotion  # transformers is imported on first use

    return JoyVasaMotion(settings.weights_dir, device,
                         store=VoiceMotionStore(settings.cache_dir))
