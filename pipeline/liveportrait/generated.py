"""Motion made for one job (``voice``, ``still``): what the renderer needs besides a clip.

A generated motion has exactly the job's frames at the job's fps, so every output frame is a
distinct render (no retiming, no reuse). Its content hash keys the render cache: a rerun with the
same motion renders nothing, a different seed renders anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from pipeline.liveportrait.template import DrivingMotion


class KeypointRule(StrEnum):
    """How generated motion becomes driving keypoints (before stitching)."""

    # still: relative pose and scale, the source's expression, and eye retargeting from
    # ``c_eyes`` added on top (the official Gradio retargeting order: pose, + eyes, stitch)
    BLINKS = "blinks"
    # voice: JoyVASA's rule (``live_portrait_wmg_pipeline.py`` at 74290f6): relative pose, scale,
    # translation and expression, but the lip keypoints take the generated expression as is
    VOICE = "voice"


@dataclass(frozen=True, slots=True)
class GeneratedMotion:
    """One job's motion (``motion.n_frames`` output frames), its hash and its keypoint rule."""

    motion: DrivingMotion
    rule: KeypointRule

    @property
    def sha256(self) -> str:
        return motion_sha256(self.motion)


# the stage calls it with the source's eye-opening ratios (2,) once the photo is cropped
MotionMaker = Callable[[np.ndarray], GeneratedMotion]


def motion_sha256(motion: DrivingMotion) -> str:
    """A hash of every number in ``motion`` (the frame rate and each array's bytes and shape)."""
    digest = hashlib.sha256(repr(float(motion.fps)).encode())
    for name in ("scale", "R", "exp", "t", "kp", "x_s", "c_eyes", "c_lip"):
        value = getattr(motion, name)
        digest.update(name.encode())
        if value is not None:
            arr = np.ascontiguousarray(value, dtype=np.float32)
            digest.update(repr(arr.shape).encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()
