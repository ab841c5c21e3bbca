"""Which motion source drives a job, and why: the one rule (job.yaml, config, weights, library).

``resolve_motion`` is the only place that decides. Its order:

1. ``motion:`` in job.yaml (``clip``, ``voice`` or ``still``) is obeyed; ``voice`` without its
   weights is an environment fault (``WeightsError``: the job waits, it is not failed);
2. a clip the job names (``driving:``) or brings along (a video in the folder) means ``clip``;
3. ``motion.source`` in the config, when it is not ``auto``, is obeyed like 1;
4. ``auto``: ``voice`` when its weights are present, else the library's default clip, else
   ``still`` (which needs nothing).

The reason is kept in words for timing.json, status.json and the notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import WeightsError
from pipeline.liveportrait.drivers import DriverLibrary, DrivingChoice, resolve_driving
from pipeline.motion.kinds import MotionSource
from pipeline.motion.voice import VoiceMotion

__all__ = ["MotionChoice", "MotionSource", "resolve_motion", "voice_missing"]


@dataclass(frozen=True, slots=True)
class MotionChoice:
    """The source a job uses, why (in words), and the clip when the source is ``clip``."""

    source: MotionSource
    reason: str
    clip: DrivingChoice | None = None

    def summary(self) -> str:
        """``clip 'calm' (job.yaml names the clip)``: the source and why, in one line."""
        name = f" '{self.clip.name}'" if self.clip is not None else ""
        return f"{self.source.value}{name} ({self.reason})"


def resolve_motion(
    asked: MotionSource | None,
    driving: str | Path | None,
    *,
    configured: MotionSource | None,
    voice: VoiceMotion | None,
    library: DriverLibrary,
    default_clip: str,
    job_dir: Path | None = None,
) -> MotionChoice:
    """The motion source of a job (see the module docstring for the order).

    ``asked``: job.yaml's ``motion:`` (None: not set); ``driving``: as in ``JobSpec.driving``;
    ``configured``: the config's ``motion.source`` (None: ``auto``); ``voice``: the injected
    voice-motion provider (None: none wired in). Raises ``InputError`` for a clip that cannot be
    found and ``WeightsError`` for ``voice`` without its weights.
    """
    if asked is not None:
        return _chosen(asked, "job.yaml says motion: " + asked.value, driving, voice, library,
                       default_clip, job_dir)
    if driving is not None:
        clip = resolve_driving(driving, library, job_dir=job_dir, default=default_clip)
        why = ("the job folder brings its own driving video" if isinstance(driving, Path)
               else "job.yaml names the clip")
        return MotionChoice(MotionSource.CLIP, why, clip)
    if configured is not None:
        return _chosen(configured, "the config sets motion.source: " + configured.value, None,
                       voice, library, default_clip, job_dir)
    return _automatic(voice, library, default_clip, job_dir)


def _chosen(source: MotionSource, why: str, driving: str | Path | None, voice: VoiceMotion | None,
            library: DriverLibrary, default_clip: str, job_dir: Path | None) -> MotionChoice:
    if source is MotionSource.CLIP:
        clip = resolve_driving(driving, library, job_dir=job_dir, default=default_clip)
        return MotionChoice(source, why, clip)
    if source is MotionSource.VOICE:
        absent = voice_missing(voice)
        if absent is not None:
            raise WeightsError(f"motion: voice needs the voice weights: {absent}",
                               fix="facedrop weights fetch voice (or choose motion: still)")
    return MotionChoice(source, why)


def _automatic(voice: VoiceMotion | None, library: DriverLibrary, default_clip: str,
               job_dir: Path | None) -> MotionChoice:
    absent = voice_missing(voice)
    if absent is None:
        return MotionChoice(MotionSource.VOICE,
                            "no clip named and the voice weights are present")
    if default_clip and library.find(default_clip) is not None:
        clip = resolve_driving(None, library, job_dir=job_dir, default=default_clip)
        return MotionChoice(MotionSource.CLIP,
                            f"no clip named and no voice weights ({absent}): the library's "
                            "default clip", clip)
    return MotionChoice(MotionSource.STILL,
                        f"no clip named, no voice weights ({absent}) and no default clip")


def voice_missing(voice: VoiceMotion | None) -> str | None:
    """Why voice motion cannot run here (None: it can)."""
    if voice is None:
        return "voice motion is not installed in this build"
    return voice.missing()
