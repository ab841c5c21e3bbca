"""Motion amount: how far the head and the face move, as factors on a generated motion.

A factor scales each frame's change since frame 0 (the renderer applies motion relative to
frame 0, so frame 0 stays the photo): the head's rotation angle (about the same axis), its
translation and its scale ratio by ``head``; the expression of every keypoint except the lips
by ``face``. The lips keep their full motion: the mouth is the speech itself, and JoyVASA's
other complaint is a mouth that does not open enough. 1.0 leaves a motion as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.liveportrait.motion import LIP_KEYPOINTS
from pipeline.liveportrait.template import DrivingMotion


@dataclass(frozen=True, slots=True)
class MotionAmount:
    """Factors on the head's motion and the face's expression (0 = still, 1 = as generated)."""

    head: float = 1.0
    face: float = 1.0

    def tag(self) -> str:
        return f"head={self.head:g}|face={self.face:g}"


def rotation_power(rel: np.ndarray, factor: float) -> np.ndarray:
    """Each rotation (B,3,3) turned ``factor`` times as far about its own axis."""
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)  # (B,)
    axis = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0],
                     rel[:, 1, 0] - rel[:, 0, 1]], axis=1)  # 2 sin(angle) * axis
    norm = np.linalg.norm(axis, axis=1, keepdims=True)
    axis = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-12), 0.0)
    k = np.zeros_like(rel)  # the cross-product matrix of the axis
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = axis[:, 2], -axis[:, 1], axis[:, 0]
    theta = (angle * factor)[:, None, None]
    return np.eye(3)[None] + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)  # Rodrigues


def scale_motion(motion: DrivingMotion, amount: MotionAmount) -> DrivingMotion:
    """``motion`` with its head and face changes since frame 0 scaled by ``amount``."""
    if amount.head == 1.0 and amount.face == 1.0:
        return motion
    r0 = motion.R[0].astype(np.float64)
    rel = motion.R.astype(np.float64) @ r0.T  # R_i = rel_i @ R_0 (row-vector convention)
    rot = rotation_power(rel, amount.head) @ r0
    s0, t0, e0 = motion.scale[0], motion.t[0], motion.exp[0]
    ratio = np.maximum(motion.scale / s0, 1e-6)
    exp = e0 + (motion.exp - e0) * amount.face
    lips = list(LIP_KEYPOINTS)
    exp[:, lips] = motion.exp[:, lips]
    return replace(
        motion,
        R=rot.astype(np.float32),
        scale=(s0 * ratio ** amount.head).astype(np.float32),
        t=(t0 + (motion.t - t0) * amount.head).astype(np.float32),
        exp=exp.astype(np.float32),
    )
