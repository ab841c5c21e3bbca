"""Driving motion: extracted once per clip (streamed, in two passes), then read from the cache.

Official behaviour (``Cropper.crop_driving_video``, ``live_portrait_pipeline.execute``):
landmarks are detected on the first frame and tracked after it; each frame's box comes from
``parse_bbox_from_landmark(lmk, scale=2.2, vy_ratio=-0.1)`` (an axis-aligned square with the
rotation-aware centre and size); the boxes are AVERAGED over the clip and every frame is cropped
with that one box to 512, then ``cv2.resize(..., (256, 256))`` (default INTER_LINEAR, unlike the
source image's INTER_AREA). A square clip is used as is (official: any square clip); here only
when the face also fills it (averaged box side >= ``PRECROPPED_FILL`` of the frame), so a square
wide shot is still cropped.

Unlike the official code, which decodes the whole clip into RAM, frames are streamed twice:
pass 1 tracks landmarks and keeps only per-frame boxes and ratios (a few floats per frame);
pass 2 crops and runs the motion extractor in batches of ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.digest import sha256_file
from pipeline.errors import InputError, NoFaceError
from pipeline.face.affine import Affine, warp
from pipeline.face.geometry import bbox_crop, liveportrait_bbox
from pipeline.face.landmarker import Landmarker
from pipeline.face.ratios import eye_ratio, lip_ratio
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.liveportrait.nets import KeypointBatch, NetRunner
from pipeline.liveportrait.template import DrivingMotion, load_template
from pipeline.media.video import iter_frames, probe_video
from pipeline.spec import CacheState, CancelToken, ProgressFn

PRECROPPED_FILL = 0.75


@dataclass(frozen=True, slots=True)
class ClipMotion:
    """A driving clip's motion, its content hash and whether the cache supplied it."""

    motion: DrivingMotion
    sha256: str
    cache: CacheState


def driving_crop(width: int, height: int, boxes: np.ndarray) -> Affine | None:
    """The crop for every frame: the per-frame boxes (N,4) averaged (official
    ``average_bbox_lst``), or None for a square clip the face already fills (used as is)."""
    box = boxes.mean(axis=0)
    if width == height and box[2] - box[0] >= PRECROPPED_FILL * width:
        return None
    return bbox_crop(box)


def _track(frames: Iterator[np.ndarray], landmarker: Landmarker, cancel: CancelToken,
           progress: ProgressFn, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 1: per-frame driving boxes (N,4) x1,y1,x2,y2, eye ratios (N,2), lip ratios (N,1)."""
    boxes, eyes, lips = [], [], []
    prev: np.ndarray | None = None
    for i, frame in enumerate(frames):
        try:
            if prev is None:
                prev = landmarker.landmarks(frame, landmarker.detect(frame))
            else:
                prev = landmarker.track(frame, prev)
        except NoFaceError:
            if prev is None:  # only on the first frame: any later frame has landmarks to keep
                raise InputError(
                    "no face in the first frame of the driving video",
                    fix="use a driving clip that shows one face from its first frame",
                ) from None
            # a frame without a face keeps the last landmarks (the clip keeps its length)
        boxes.append(liveportrait_bbox(prev))  # scale 2.2, vy -0.1 (CropConfig)
        eyes.append(eye_ratio(landmarker.eyelids(frame, prev), prev))  # official scale (ratios.py)
        lips.append(lip_ratio(prev))
        if i % 16 == 0:
            cancel.raise_if_cancelled()
            progress("driving", 0.5 * i / max(n, 1))
    if not boxes:
        raise InputError("the driving video has no frames")
    return np.array(boxes), np.array(eyes, np.float32), np.array(lips, np.float32)


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def extract_motion(
    clip: Path, nets: NetRunner, landmarker: Landmarker, batch_size: int,
    progress: ProgressFn, cancel: CancelToken,
) -> DrivingMotion:
    """Run the official driving path on a video once: track, average the box, crop, run M."""
    info = probe_video(clip)
    boxes, eyes, lips = _track(iter_frames(clip), landmarker, cancel, progress, info.frames)
    affine = driving_crop(info.width, info.height, boxes)
    parts: list[KeypointBatch] = []
    done = 0
    for batch in _batches(iter_frames(clip), batch_size):
        cancel.raise_if_cancelled()
        crops = [f if affine is None else warp(f, affine, 512) for f in batch]
        small = np.stack([cv2.resize(c, (256, 256)) for c in crops])  # official: INTER_LINEAR
        parts.append(nets.keypoint_info(small))
        done += len(batch)
        del batch, crops, small  # let this chunk's frames go before the next one is decoded
        progress("driving", 0.5 + 0.5 * done / max(len(boxes), 1))
    kp = KeypointBatch.concat(parts)
    n = min(len(boxes), kp.R.shape[0])  # both passes decode the same stream
    return DrivingMotion(
        fps=float(info.fps), scale=kp.scale[:n], R=kp.R[:n], exp=kp.exp[:n], t=kp.t[:n],
        kp=kp.kp[:n], x_s=kp.x_s[:n], c_eyes=eyes[:n], c_lip=lips[:n],
    )


def clip_motion(
    clip: Path, nets: NetRunner, landmarker: Landmarker, cache: MotionCache, batch_size: int,
    progress: ProgressFn, cancel: CancelToken,
) -> ClipMotion:
    """The clip's motion from the cache, or extracted now and cached (a ``.pkl`` template is
    read directly, with the restricted unpickler)."""
    sha = sha256_file(clip)
    if clip.suffix.lower() == ".pkl":
        return ClipMotion(load_template(clip), sha, CacheState.NONE)
    cached = cache.get(sha, nets.motion_version)
    if cached is not None:
        return ClipMotion(cached, sha, CacheState.HIT)
    motion = extract_motion(clip, nets, landmarker, batch_size, progress, cancel)
    cache.put(sha, nets.motion_version, motion)
    return ClipMotion(motion, sha, CacheState.MISS)
