"""A job's generated motion (``voice``, ``still``) as the renderer asks for it.

``motion_maker`` returns a ``MotionMaker``: the stage calls it once it has cropped the photo,
with the photo's own eye-opening ratios (the level ``still`` blinks return to), and gets the
motion for exactly the job's frames at the job's fps, scaled by the job's motion amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.liveportrait.generated import GeneratedMotion, KeypointRule, MotionMaker
from pipeline.motion.amount import MotionAmount, scale_motion
from pipeline.motion.source import MotionSource
from pipeline.motion.still import still_motion
from pipeline.motion.voice import VoiceMotion

# Why JoyVASA's mouth "will not open" at the default crop (FasterLivePortrait #128, #178): the
# generator learnt its motion from driving crops made at ``scale_crop_driving_video = 2.0``
# (JoyVASA ``src/config/argument_config.py``, which ``src/prepare_data/01_extract_motions.py``
# uses), while a photo is cropped at the source default 2.3 (``crop_config.py``), where the face
# is ~13% smaller. JoyVASA puts the generated lip expression in as it is (absolute, not
# relative to the photo's: ``live_portrait_wmg_pipeline.py``), and LivePortrait's motion
# extractor does not separate a face's size from its expression cleanly (scale and exp both
# shift with the crop), so lip values learnt at 2.0 land too small at 2.3. Users confirm the
# mouth opens again at 1.8-2.0 (#128). Fix: crop the photo for voice motion at the scale the
# motion was learnt at. The paste-back uses that same crop transform, so the video's framing
# does not change. (Reasoned from the code; checking it needs the real weights.)
VOICE_CROP_SCALE = 2.0


@dataclass(frozen=True, slots=True)
class MotionJob:
    """What generated motion depends on: the frames, the seed, the sampler, the amount."""

    n_frames: int
    fps: float
    seed: int
    steps: int | None  # None: the official 500-step sampler
    amount: MotionAmount


def motion_maker(source: MotionSource, job: MotionJob, audio_16k: np.ndarray,
                 voice: VoiceMotion | None,
                 progress: Callable[[float], None] | None = None) -> MotionMaker:
    """The maker of ``job``'s motion from ``source`` (``voice`` or ``still``)."""
    if source is MotionSource.STILL:
        def still(eyes: np.ndarray) -> GeneratedMotion:
            motion = still_motion(job.n_frames, job.fps, job.seed, eyes).motion
            return GeneratedMotion(scale_motion(motion, job.amount), KeypointRule.BLINKS)
        return still
    if source is MotionSource.VOICE and voice is not None:
        provider = voice

        def spoken(eyes: np.ndarray) -> GeneratedMotion:
            motion = provider.generate(audio_16k, job.fps, job.n_frames, seed=job.seed,
                                       steps=job.steps, progress=progress)
            # the seam promises exactly the job's frames at the job's rate
            if motion.n_frames != job.n_frames or abs(motion.fps - job.fps) > 1e-6:
                raise ValueError(f"voice motion gave {motion.n_frames} frames at {motion.fps} "
                                 f"fps for {job.n_frames} at {job.fps}")
            return GeneratedMotion(scale_motion(motion, job.amount), KeypointRule.VOICE)
        return spoken
    raise ValueError(f"no motion maker for {source.value}")
