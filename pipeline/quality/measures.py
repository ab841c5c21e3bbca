"""Cheap per-video measures, each with a threshold and a verdict in words.

Every measure is a pure function of frames (RGB uint8) and/or landmarks (T, 468, 2 image pixels)
returning a ``Measure``: its value, unit, threshold, and ``ok`` or ``check`` with the reason.
Thresholds live in ``THRESHOLDS`` (one place; the config keys will map onto it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.face import meshidx
from pipeline.face.geometry import similarity_lstsq, wav2lip_box
from pipeline.lipsync.wav2lip.blend import lower_face_mask


class Verdict(enum.Enum):
    OK = "ok"
    CHECK = "check"
    NOT_SCORED = "not scored"


class Bound(enum.Enum):
    """Which side of the threshold is good."""

    AT_MOST = "at most"
    AT_LEAST = "at least"


@dataclass(frozen=True)
class Threshold:
    limit: float
    bound: Bound


# One place for every threshold (the config's ``quality:`` keys will override these).
THRESHOLDS: dict[str, Threshold] = {
    "tracked_share": Threshold(0.95, Bound.AT_LEAST),  # share of frames whose face was tracked
    "landmark_jitter_px": Threshold(1.0, Bound.AT_MOST),  # RMS high-frequency landmark motion
    "seam_step": Threshold(4.0, Bound.AT_MOST),  # grey levels: step across the blend edge
    "flicker": Threshold(3.0, Bound.AT_MOST),  # grey levels: change beyond head motion, no mouth
    "duration_gap_s": Threshold(0.1, Bound.AT_MOST),  # |audio - video| seconds
    "lse_c": Threshold(3.0, Bound.AT_LEAST),  # SyncNet confidence
    "lse_d": Threshold(9.0, Bound.AT_MOST),  # SyncNet min distance
    "av_offset_frames": Threshold(1.0, Bound.AT_MOST),  # |offset| at the best match
}

# What a failing measure means, in words for the report and the notification.
PROBLEMS: dict[str, str] = {
    "tracked_share": "the face was tracked in too few frames",
    "landmark_jitter_px": "the face landmarks jitter",
    "seam_step": "the edge of the mouth patch is visible",
    "flicker": "the face flickers outside the mouth",
    "duration_gap_s": "audio and video lengths differ",
    "lse_c": "lip sync is weak",
    "lse_d": "lips and speech are far apart (SyncNet distance)",
    "av_offset_frames": "audio and lips are offset",
}


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    unit: str
    threshold: float
    bound: Bound
    verdict: Verdict
    reason: str  # empty when ok

    def as_dict(self) -> dict[str, object]:
        return {"value": round(self.value, 4), "unit": self.unit, "threshold": self.threshold,
                "bound": self.bound.value, "verdict": self.verdict.value, "reason": self.reason}


def judge(name: str, value: float, unit: str,
          thresholds: dict[str, Threshold] | None = None, absolute: bool = False) -> Measure:
    """A ``Measure`` with its verdict against ``thresholds[name]`` (``THRESHOLDS`` by default)."""
    th = (thresholds or THRESHOLDS)[name]
    x = abs(value) if absolute else value
    good = x <= th.limit if th.bound is Bound.AT_MOST else x >= th.limit
    reason = "" if good else (
        f"{PROBLEMS[name]}: {value:.3g} {unit}".rstrip() + f" ({th.bound.value} {th.limit:g})")
    return Measure(name, float(value), unit, th.limit, th.bound,
                   Verdict.OK if good else Verdict.CHECK, reason)


# Measures whose verdict uses the value's size (a signed offset or gap).
ABSOLUTE = frozenset({"duration_gap_s", "av_offset_frames"})


def limits_of(limits: Mapping[str, float]) -> dict[str, Threshold]:
    """``THRESHOLDS`` with the limits a config sets (measure name -> limit; bounds stay)."""
    unknown = set(limits) - set(THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown quality measures: {', '.join(sorted(unknown))}")
    return {name: Threshold(float(limits.get(name, th.limit)), th.bound)
            for name, th in THRESHOLDS.items()}


def rejudged(measure: Measure, thresholds: dict[str, Threshold]) -> Measure:
    """The same value judged against other thresholds."""
    return judge(measure.name, measure.value, measure.unit, thresholds,
                 absolute=measure.name in ABSOLUTE)


# -- tracking ----------------------------------------------------------------------------------
def tracked_share(tracked: Sequence[bool]) -> Measure:
    """Share of frames whose face was tracked (not carried over from an earlier frame)."""
    flags = np.asarray(tracked, dtype=bool)
    share = float(flags.mean()) if flags.size else 0.0
    return judge("tracked_share", share, "")


STABLE_POINTS = np.concatenate([meshidx.EYE_L, meshidx.EYE_R, meshidx.BROW_L, meshidx.BROW_R,
                                meshidx.NOSE, meshidx.JAW])


def landmark_jitter(landmarks: np.ndarray) -> Measure:
    """RMS (px) of each stable landmark's deviation from the mean of its two neighbours in time.

    Smooth head motion leaves almost nothing (its second difference is tiny); frame-to-frame
    noise of standard deviation sigma gives about 1.22 sigma. Mouth points are left out (speech
    moves them on purpose).
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, STABLE_POINTS, :2]
    if len(pts) < 3:
        return judge("landmark_jitter_px", 0.0, "px")
    resid = pts[1:-1] - (pts[:-2] + pts[2:]) / 2
    return judge("landmark_jitter_px", float(np.sqrt(np.mean(np.sum(resid**2, axis=-1)))), "px")


# -- seam ---------------------------------------------------------------------------------------
def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _patch_region(lmk: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 mask of the pixels the mouth patch changes (our blend weight > 0), image-sized."""
    h, w = shape
    x1, y1, x2, y2 = (int(round(v)) for v in wav2lip_box(lmk, image_size=(w, h)))
    region = np.zeros((h, w), np.uint8)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return region
    region[y1:y2, x1:x2] = lower_face_mask(lmk, (x1, y1, x2, y2)) > 0
    return region


def seam_step(frames: Sequence[np.ndarray], before: Sequence[np.ndarray],
              landmarks: np.ndarray) -> Measure:
    """The step the mouth patch leaves at its edge: the mean change the lip sync made (|frame -
    frame before lip sync|, worst colour channel, grey levels) on the outermost pixel layer of
    the patch region, averaged over frames.

    Outside the region the lip sync changes nothing, so that change is the step across the edge.
    A feathered blend fades to nothing there; a hard paste, or a patch of another brightness
    or colour, leaves the whole difference at the edge. A spatial step on the output alone
    cannot tell a seam from the face's own edges (nostrils, lips, jaw), hence the frames before
    lip sync: this measure is for facedrop's own jobs, not for any video. The region is the
    support of our blend weight (the jaw-to-nostrils hull inside the Wav2Lip box).
    """
    steps = []
    for frame, ref, lmk in zip(frames, before, landmarks, strict=True):
        region = _patch_region(np.asarray(lmk, np.float64)[:, :2], frame.shape[:2])
        outer = cv2.distanceTransform(region, cv2.DIST_L2, 3)
        layer = (outer >= 1) & (outer < 2)
        if layer.sum() < 8:
            continue
        diff = np.abs(frame.astype(np.int16) - ref.astype(np.int16)).max(axis=-1)
        steps.append(float(diff[layer].mean()))
    return judge("seam_step", float(np.mean(steps)) if steps else 0.0, "grey levels")


# -- flicker ------------------------------------------------------------------------------------
ALIGN_POINTS = np.concatenate([meshidx.EYE_L_CENTRE, meshidx.EYE_R_CENTRE, meshidx.NOSE,
                               meshidx.BROW_L, meshidx.BROW_R])


def _upper_face_mask(lmk: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The face oval without the mouth patch region and the eyes (blinks are not flicker)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(lmk[meshidx.FACE_OVAL].astype(np.int32)), 1)
    mask[cv2.dilate(_patch_region(lmk, shape), np.ones((9, 9), np.uint8)) > 0] = 0
    for eye in (meshidx.EYE_L, meshidx.EYE_R):
        hull = cv2.convexHull(lmk[eye].astype(np.int32))
        eye_mask = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(eye_mask, hull, 1)
        mask[cv2.dilate(eye_mask, np.ones((7, 7), np.uint8)) > 0] = 0
    return mask


def flicker(frames: Sequence[np.ndarray], landmarks: np.ndarray,
            pairs: Sequence[int] | None = None) -> Measure:
    """Mean absolute grey change between consecutive frames on the face outside the mouth and
    eyes, after moving the previous frame onto the current one by the head's motion (a
    similarity transform fitted to stable landmarks). The mean over frame pairs ``(k-1, k)`` for
    ``k`` in ``pairs`` (default every pair), grey levels.
    """
    changes = [flicker_change(frames[k - 1], frames[k], landmarks[k - 1], landmarks[k])
               for k in (range(1, len(frames)) if pairs is None else pairs)]
    return flicker_of([c for c in changes if c is not None])


def flicker_change(prev_frame: np.ndarray, frame: np.ndarray, prev_landmarks: np.ndarray,
                   landmarks: np.ndarray) -> float | None:
    """One pair's change (see ``flicker``); None when too little of the face is left to see."""
    prev, cur = np.asarray(prev_landmarks, np.float64), np.asarray(landmarks, np.float64)
    h, w = frame.shape[:2]
    motion = similarity_lstsq(prev[ALIGN_POINTS, :2], cur[ALIGN_POINTS, :2])
    moved = cv2.warpAffine(_grey(prev_frame), motion.matrix, (w, h),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = _upper_face_mask(cur[:, :2], (h, w))
    if mask.sum() < 16:
        return None
    return float(np.abs(_grey(frame) - moved)[mask > 0].mean())


def flicker_of(changes: Sequence[float]) -> Measure:
    """The flicker measure from the pairs' changes (0 when none could be measured)."""
    return judge("flicker", float(np.mean(changes)) if len(changes) else 0.0, "grey levels")


# -- durations ----------------------------------------------------------------------------------
def duration_gap(audio_seconds: float, video_seconds: float) -> Measure:
    """Audio length minus video length (seconds); the verdict uses its size."""
    return judge("duration_gap_s", audio_seconds - video_seconds, "s", absolute=True)
