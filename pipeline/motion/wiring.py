"""The voice-motion provider this build uses (the one place that names an implementation)."""

from __future__ import annotations

import torch

from pipeline.motion.voice import VoiceMotion
from pipeline.settings import PipelineSettings


def built_in_voice(settings: PipelineSettings, device: torch.device) -> VoiceMotion | None:
    """The ``VoiceMotion`` the runner asks for voice motion, or None when none is built in (then
    ``auto`` falls back to the default clip, else ``still``, and ``motion: voice`` waits for the
    voice weights like any missing weights)."""
    return None
