"""The motion sources and the motion settings' limits (no imports: the config reads them)."""

from __future__ import annotations

from enum import StrEnum

AUTO = "auto"  # the config's ``motion.source`` default: decide per job (``source.resolve_motion``)
OFFICIAL_STEPS = "official"  # ``motion.steps``: JoyVASA's own 500-step DDPM
AMOUNT_KEYS = ("head_motion", "face_motion")
AMOUNT_RANGE = (0.0, 1.5)


class MotionSource(StrEnum):
    """Where a job's motion comes from (a closed set)."""

    CLIP = "clip"  # a driving clip: the library's or the job's own video
    VOICE = "voice"  # generated from the voice (JoyVASA)
    STILL = "still"  # procedural: blinks, slow small head motion, breathing; needs nothing

VOICE_GROUP = "voice"  # the weight group voice motion needs (``facedrop weights fetch voice``)
