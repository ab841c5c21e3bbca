"""Head motion and blinks of a video, from the landmarks the scoring already tracks.

**Pose.** Yaw, pitch and roll per frame come from a scaled-orthographic fit of eight points of
MediaPipe's canonical face model (``canonical_face_model.obj``, Apache-2.0: the eye corners
33/133/362/263, the mouth corners 61/291, the nose tip 1 and the chin 152, in its centimetre
units) to the same FaceMesh points of the frame: the 2x3 linear map from model to image is the
least-squares fit, its rows are made orthonormal (the closest rotation's first two rows, by SVD),
and the third row is their cross product. A face at a normal distance from the camera is well
within the weak-perspective regime (depth range ~10 cm at ~50 cm), and no camera intrinsics are
needed, which a video does not carry. The angles are those of ``R = Rz(roll) Rx(pitch)
Ry(yaw)`` in image axes (x right, y down, z away from the camera): yaw turns the face about the
image's vertical axis, pitch about its horizontal axis, roll in the image plane. The absolute
angles carry the generic model's bias for a given face; range and speed are differences and
do not.

**Figures.** ``range_deg``: the 5th to 95th percentile span of each angle (robust to a few
mistracked frames). ``speed_deg_s``: the mean absolute rate of change, after a 0.2 s moving
average that removes landmark jitter (which would otherwise read as motion). ``head_speed``:
the combined angular speed (the norm of the three rates), mean over the video.

**Blinks.** From the eye ratio of the iris model's refined eyelids (``pipeline.face.ratios.
raw_eye_ratio``, both eyes averaged; FaceMesh's own lids move only ~5% in a blink, measured
on the calibration clips). The subject's open-eye level is the 90th percentile of the video's
ratio; a blink starts when the ratio falls below ``CLOSE_SHARE`` of it and ends when it is back
above ``OPEN_SHARE`` of it, and counts if the eyes were shut at most ``MAX_BLINK_S``
(longer is a closed-eye pause, not a blink). Relative to the subject's own level, so a person
with narrow eyes is not read as blinking throughout.

**Calm or lively.** ``lively`` when the combined head speed reaches ``LIVELY_SPEED_DEG_S`` or a
single angle's range reaches ``LIVELY_RANGE_DEG``, else ``calm``. For scale, the official
LivePortrait driving clips measured with these landmarks (``tests/fixtures/calibration``, 25 fps):
the talking clips d5 (6 s) and d7 (7 s) read 7.3 and 5.9 deg/s with ranges up to 10.6 and 7.2
deg (calm); d1 and d2 (16 frames each, one nod or blink) read 13.9 and 10.8 deg/s (lively: in
0.6 s they do little but move). Blinks: 3 and 4 counted on d5 and d7, where the official eye
ratios show 2 and 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe canonical face model vertices (x right, y up, z towards the camera; cm).
MODEL_POINTS = np.array([33, 133, 362, 263, 61, 291, 1, 152])
_MODEL_UP = np.array([
    [-4.445859, 2.663991, 3.173422], [-1.856432, 2.585245, 3.757904],
    [1.856432, 2.585245, 3.757904], [4.445859, 2.663991, 3.173422],
    [-2.456206, -4.342621, 4.283884], [2.456206, -4.342621, 4.283884],
    [0.000000, -1.126865, 7.475604], [0.000000, -9.403378, 4.264492],
])
MODEL = _MODEL_UP * np.array([1.0, -1.0, -1.0])  # image axes: y down, z away from the camera

SMOOTH_S = 0.2  # moving average before differentiating (landmark jitter is not motion)
RANGE_PERCENTILES = (5.0, 95.0)
OPEN_LEVEL_PERCENTILE = 90.0
CLOSE_SHARE = 0.6  # below 60% of the open-eye ratio: the eyes are closing
OPEN_SHARE = 0.8  # back above 80%: the blink is over (hysteresis against jitter)
MAX_BLINK_S = 1.0
LIVELY_SPEED_DEG_S = 10.0
LIVELY_RANGE_DEG = 15.0
AXES = ("yaw", "pitch", "roll")


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``Rz(roll) Rx(pitch) Ry(yaw)`` for angles in degrees (the convention above)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def head_pose(landmarks: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees from (T, 468, 2) FaceMesh landmarks."""
    pts = np.asarray(landmarks, np.float64)[:, MODEL_POINTS, :2]  # (T, 8, 2)
    pts = pts - pts.mean(1, keepdims=True)
    model = MODEL - MODEL.mean(0)
    m = np.einsum("kn,tnc->tkc", np.linalg.pinv(model), pts)  # (T, 3, 2): image = model @ m
    u, _, vt = np.linalg.svd(np.swapaxes(m, 1, 2), full_matrices=False)  # (T,2,2),(T,2,3)
    top = u @ vt  # (T, 2, 3): the nearest orthonormal rows
    rot = np.concatenate([top, np.cross(top[:, 0], top[:, 1])[:, None]], 1)  # (T, 3, 3)
    pitch = np.arcsin(np.clip(rot[:, 2, 1], -1.0, 1.0))
    yaw = np.arctan2(-rot[:, 2, 0], rot[:, 2, 2])
    roll = np.arctan2(-rot[:, 0, 1], rot[:, 1, 1])
    return np.degrees(np.stack([yaw, pitch, roll], 1))


def smooth(series: np.ndarray, fps: float) -> np.ndarray:
    """Centred moving average over ``SMOOTH_S`` seconds (edges use what is there)."""
    k = max(1, int(round(SMOOTH_S * fps)))
    if k == 1 or len(series) < 2:
        return np.asarray(series, np.float64)
    kernel = np.ones(k)
    x = np.asarray(series, np.float64)
    num = np.stack([np.convolve(x[:, i], kernel, "same") for i in range(x.shape[1])], 1)
    den = np.convolve(np.ones(len(x)), kernel, "same")[:, None]
    return num / den


def count_blinks(eye_ratio: np.ndarray, fps: float) -> int:
    """Blinks in a (T,) eye-ratio series (see the module docstring)."""
    r = np.asarray(eye_ratio, np.float64)
    if len(r) < 2:
        return 0
    level = float(np.percentile(r, OPEN_LEVEL_PERCENTILE))
    if level <= 0:
        return 0
    count, shut_since = 0, -1
    for i, value in enumerate(r):
        if shut_since < 0 and value < CLOSE_SHARE * level:
            shut_since = i
        elif shut_since >= 0 and value > OPEN_SHARE * level:
            count += (i - shut_since) / fps <= MAX_BLINK_S
            shut_since = -1
    return count


@dataclass(frozen=True)
class HeadMotion:
    """The head-motion figures of one video."""

    pose: np.ndarray  # (T, 3) yaw, pitch, roll in degrees, smoothed
    fps: float
    range_deg: np.ndarray  # (3,)
    speed_deg_s: np.ndarray  # (3,)
    head_speed: float  # deg/s, combined
    blinks: int | None  # None: no eye ratios to count them from
    seconds: float

    @property
    def blinks_per_minute(self) -> float | None:
        if self.blinks is None or self.seconds <= 0:
            return None
        return 60.0 * self.blinks / self.seconds

    @property
    def word(self) -> str:
        lively = (self.head_speed >= LIVELY_SPEED_DEG_S
                  or bool(np.any(self.range_deg >= LIVELY_RANGE_DEG)))
        return "lively" if lively else "calm"

    def as_dict(self) -> dict[str, object]:
        per_min = self.blinks_per_minute
        return {
            "word": self.word,
            "range_deg": {a: round(float(v), 2) for a, v in zip(AXES, self.range_deg,
                                                                 strict=True)},
            "speed_deg_per_s": {a: round(float(v), 2) for a, v in zip(AXES, self.speed_deg_s,
                                                                      strict=True)},
            "head_speed_deg_per_s": round(self.head_speed, 2),
            "blinks": self.blinks,
            "blinks_per_minute": None if per_min is None else round(per_min, 1),
            "thresholds": {"lively_speed_deg_per_s": LIVELY_SPEED_DEG_S,
                           "lively_range_deg": LIVELY_RANGE_DEG},
        }


def head_motion(landmarks: np.ndarray, fps: float,
                eye_ratio: np.ndarray | None = None) -> HeadMotion:
    """Pose, its range and speed, and the blinks of a (T, 468, 2) landmark series at ``fps``;
    ``eye_ratio``: (T,) or (T, 2) raw eye ratios, or None (blinks not counted)."""
    pose = smooth(head_pose(landmarks), fps)
    lo, hi = np.percentile(pose, RANGE_PERCENTILES, axis=0)
    rates = np.diff(pose, axis=0) * fps if len(pose) > 1 else np.zeros((1, 3))
    blinks = None
    if eye_ratio is not None:
        ratio = np.asarray(eye_ratio, np.float64)
        blinks = count_blinks(ratio.mean(1) if ratio.ndim == 2 else ratio, fps)
    return HeadMotion(pose, fps, hi - lo, np.abs(rates).mean(0),
                      float(np.linalg.norm(rates, axis=1).mean()), blinks, len(pose) / fps)
