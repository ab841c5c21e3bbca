"""The pose-over-time strip under ``preview.jpg``: yaw, pitch and roll against time.

One band ``STRIP_H`` pixels high across the sheet's width; a grey line at 0 degrees (each angle
drawn relative to its own median, so the model's bias for a face does not shift the curve), the
vertical scale fixed at +-``SCALE_DEG`` so strips of different videos compare at a glance
(calm heads draw nearly flat lines), and a legend with the head-motion word.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.quality.headmotion import AXES, HeadMotion

STRIP_H = 90
SCALE_DEG = 20.0  # the strip's half height in degrees; larger excursions are clipped
BACKGROUND = 24
COLOURS = ((230, 80, 80), (90, 200, 90), (90, 140, 240))  # RGB: yaw, pitch, roll
FONT = cv2.FONT_HERSHEY_SIMPLEX


def pose_strip(motion: HeadMotion, width: int) -> np.ndarray:
    """(STRIP_H, width, 3) uint8 RGB."""
    strip = np.full((STRIP_H, width, 3), BACKGROUND, np.uint8)
    mid = STRIP_H / 2
    cv2.line(strip, (0, round(mid)), (width - 1, round(mid)), (90, 90, 90), 1)
    pose = motion.pose
    if len(pose) >= 2:
        xs = np.linspace(0, width - 1, len(pose))
        rel = np.clip(pose - np.median(pose, axis=0), -SCALE_DEG, SCALE_DEG)
        ys = mid - rel * (mid - 4) / SCALE_DEG  # degrees up
        for axis, colour in enumerate(COLOURS):
            line = np.stack([xs, ys[:, axis]], 1).round().astype(np.int32)
            cv2.polylines(strip, [line], False, colour, 1, cv2.LINE_AA)
    x = 6
    for name, colour in zip(AXES, COLOURS, strict=True):
        cv2.putText(strip, name, (x, 14), FONT, 0.4, colour, 1, cv2.LINE_AA)
        x += 8 * len(name) + 10
    label = f"head: {motion.word}, +-{SCALE_DEG:g} deg, {motion.seconds:.1f} s"
    cv2.putText(strip, label, (x + 6, 14), FONT, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return strip


def with_pose_strip(sheet: np.ndarray, motion: HeadMotion | None) -> np.ndarray:
    """The contact sheet with the strip below it (unchanged without head-motion figures)."""
    if motion is None:
        return sheet
    return np.vstack([sheet, pose_strip(motion, sheet.shape[1])])
