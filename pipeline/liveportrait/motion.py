"""Relative motion: the driving clip's changes since its first frame, applied to the source.

Follows the official image-source, video-driving, relative-motion path
(``src/live_portrait_pipeline.py::execute``), per driving frame i::

    R_new   = (R_d,i @ R_d,0^T) @ R_s
    exp_new = exp_s + (exp_d,i - exp_d,0)
    s_new   = s_s * (s_d,i / s_d,0)
    t_new   = t_s + (t_d,i - t_d,0),  t_new[z] = 0
    x_d,i   = s_new * (kp_s @ R_new + exp_new) + t_new

then, for the "expression-friendly" option (the official CLI default), ``x_d,i = (x_d,i - x_d,0)
* m + x_s`` with ``m = sqrt(hull volume(x_s)) / sqrt(hull volume(x_d,0))``. Keypoint maths is on
21x3 arrays, so it runs in numpy on the CPU; only the networks run on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from pipeline.liveportrait.hull import convex_hull_volume
from pipeline.liveportrait.template import DrivingMotion

# The implicit keypoints that move the mouth: the official ``animation_region == "lip"`` set
# (``[6, 12, 14, 17, 19, 20]``); eyes are ``[11, 13, 15, 16, 18]``.
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)


class DrivingOption(StrEnum):
    """The official ``driving_option``."""

    EXPRESSION_FRIENDLY = "expression-friendly"  # rescale motion to the source's keypoint spread
    POSE_FRIENDLY = "pose-friendly"


@dataclass(frozen=True, slots=True)
class SourceKeypoints:
    """The source face's motion: canonical ``kp`` (21,3), ``R`` (3,3), ``exp`` (21,3),
    ``scale`` (1,), ``t`` (3,), and the posed keypoints ``x_s`` (21,3)."""

    kp: np.ndarray
    R: np.ndarray
    exp: np.ndarray
    scale: np.ndarray
    t: np.ndarray
    x_s: np.ndarray


def posed_keypoints(
    src: SourceKeypoints, motion: DrivingMotion, frames: np.ndarray, hold_lips: bool,
    absolute_lips: bool = False,
) -> np.ndarray:
    """``x_d`` (B,21,3) for driving ``frames`` before any multiplier or stitching.

    ``hold_lips``: the lip keypoints keep the source's expression (no driving mouth motion), so
    the mouth stays as in the photo for the lip-sync model to redraw. ``absolute_lips`` (voice
    motion, unless ``hold_lips``): the lip keypoints take the driving expression as it is, as
    JoyVASA does (``live_portrait_wmg_pipeline.py``: ``delta_new[:, lip_idx] = x_d_i['exp']``).
    """
    frames = np.asarray(frames, dtype=np.int64)
    r_rel = motion.R[frames] @ motion.R[0].T  # (B,3,3)
    r_new = r_rel @ src.R
    delta = motion.exp[frames] - motion.exp[0]  # (B,21,3)
    if hold_lips:
        delta[:, list(LIP_KEYPOINTS), :] = 0.0
    exp_new = src.exp[None] + delta
    if absolute_lips and not hold_lips:
        exp_new[:, list(LIP_KEYPOINTS), :] = motion.exp[frames][:, list(LIP_KEYPOINTS), :]
    scale_new = src.scale[None] * (motion.scale[frames] / motion.scale[0])  # (B,1)
    t_new = src.t[None] + (motion.t[frames] - motion.t[0])  # (B,3)
    t_new[:, 2] = 0.0  # the official pipeline zeroes tz
    x_d = scale_new[:, :, None] * (src.kp[None] @ r_new + exp_new) + t_new[:, None, :]
    return x_d.astype(np.float32)


def expression_multiplier(src: SourceKeypoints, motion: DrivingMotion) -> float:
    """The official ``calc_motion_multiplier(x_s, x_d,0)`` (sqrt of convex-hull volumes)."""
    x_d0 = posed_keypoints(src, motion, np.array([0]), hold_lips=False)[0]
    driving = convex_hull_volume(x_d0)
    if driving <= 0:
        return 1.0
    return float(np.sqrt(convex_hull_volume(src.x_s)) / np.sqrt(driving))


def relative_keypoints(
    src: SourceKeypoints,
    motion: DrivingMotion,
    frames: np.ndarray,
    option: DrivingOption,
    hold_lips: bool,
    multiplier: float | None = None,
) -> np.ndarray:
    """Driving keypoints (B,21,3) for ``frames`` by the chosen option, before stitching.

    ``multiplier`` is ``expression_multiplier`` (pass it in to compute it once per job).
    """
    x_d = posed_keypoints(src, motion, frames, hold_lips)
    if option is DrivingOption.EXPRESSION_FRIENDLY:
        if multiplier is None:
            multiplier = expression_multiplier(src, motion)
        x_d0 = posed_keypoints(src, motion, np.array([0]), hold_lips=False)
        x_d = (x_d - x_d0) * multiplier + src.x_s[None]
    return x_d.astype(np.float32)
