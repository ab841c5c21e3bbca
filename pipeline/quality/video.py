"""Scoring a video file (``facedrop score``): decode at 25 fps, track the face, ``quality_report``.

Frames are kept in memory as JPEG (quality 95, about 20x smaller than raw), like the official
SyncNet pipeline, which extracts its frames to JPEG files with ffmpeg before scoring. A video at
another rate is resampled to 25 fps by holding the latest frame (as ``ffmpeg -r 25`` does in the
official ``run_pipeline.py``). Frames larger than ``MAX_SIDE`` are scaled down first (the official
pipeline crops at the original resolution; a face in a 720 px frame is still larger than the
224 px crop), so five minutes of 1080p video stay within about 1 GB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import InputError, NoFaceError
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.ratios import raw_eye_ratio
from pipeline.media.audio import load_audio
from pipeline.media.lazy_frames import LazyFrames
from pipeline.media.video import iter_frames_timed, probe_video
from pipeline.models.syncnet import SyncNet
from pipeline.quality.model import load_syncnet, syncnet_path
from pipeline.quality.report import QualityReport, quality_report
from pipeline.quality.syncscore import FPS

JPEG_QUALITY = 95
MAX_SECONDS = 300.0
MAX_SIDE = 720  # frames are kept at most this large (memory); faces stay well above 224 px


class JpegFrames(LazyFrames):
    """RGB frames held as JPEG bytes; indexing decodes one frame."""

    def __init__(self) -> None:
        self._data: list[bytes] = []

    def append(self, rgb: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("a frame could not be encoded")
        self._data.append(buf.tobytes())

    def __len__(self) -> int:
        return len(self._data)

    def _frame(self, index: int) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(self._data[index], np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("a stored frame could not be decoded")
        return np.ascontiguousarray(bgr[..., ::-1])


def at_25fps(timed: Iterable[tuple[float, np.ndarray]], max_seconds: float = MAX_SECONDS,
             path: Path | None = None) -> Iterator[np.ndarray]:
    """Frames at ``k / 25`` s for k = 0, 1, ...: the latest frame shown at that time, up to
    the end of the last frame (its start plus the previous frame interval)."""
    k = 0
    last: np.ndarray | None = None
    last_t = prev_t = 0.0
    for t, frame in timed:
        while last is not None and k / FPS < t - 1e-6:
            yield last
            k += 1
        if t > max_seconds:
            raise InputError(f"the video is longer than {max_seconds:.0f} s", file=path,
                             fix="score a shorter clip (cut it first)")
        last, prev_t, last_t = frame, last_t, t
    if last is None:
        return
    end = last_t + ((last_t - prev_t) if last_t > prev_t else 1 / FPS)
    while k / FPS < end - 1e-6:
        yield last
        k += 1


def bounded(rgb: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """The frame scaled down (area filter) so its longer side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


@dataclass
class ScoredVideo:
    report: QualityReport
    frames: JpegFrames
    landmarks: np.ndarray
    audio_seconds: float


def track_faces(frames: Sequence[np.ndarray], landmarker: FaceLandmarker,
                eyes: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[bool]]:
    """(T, 468, 2) landmarks and whether each frame's were found (else carried over).

    Frames before the first face found get its landmarks; a lost face keeps the previous ones.
    With ``eyes`` (a list to fill), each frame's raw eye ratios (2,) are appended too (the iris
    model's eyelids, for the blink count; NaN where no face was found yet), while the frame is
    decoded anyway. Raises ``NoFaceError`` if no frame has a face.
    """
    marks: list[np.ndarray | None] = []
    tracked: list[bool] = []
    prev: np.ndarray | None = None
    for frame in frames:
        try:
            prev = (landmarker.track(frame, prev) if prev is not None
                    else landmarker.landmarks(frame, landmarker.detect(frame)))
            tracked.append(True)
        except NoFaceError:
            tracked.append(False)
        marks.append(prev)
        if eyes is not None:
            eyes.append(raw_eye_ratio(landmarker.eyelids(frame, prev)) if prev is not None
                        else np.full(2, np.nan))
    first = next((m for m in marks if m is not None), None)
    if first is None:
        raise NoFaceError("no face was found in any frame of the video",
                          fix="score a video that shows a face")
    return np.stack([first if m is None else m for m in marks]), tracked


def filled(eyes: list[np.ndarray]) -> np.ndarray:
    """(T, 2) eye ratios, frames before the first face given the first face's."""
    ratios = np.stack(eyes)
    found = np.flatnonzero(~np.isnan(ratios[:, 0]))
    if len(found):
        ratios[:found[0]] = ratios[found[0]]
    return ratios


def score_video(video: Path, weights_dir: Path, audio: Path | None = None, *,
                syncnet_loader: Callable[[Path], SyncNet] = load_syncnet,
                max_seconds: float = MAX_SECONDS) -> ScoredVideo:
    """Decode, track, score. Lip sync needs the SyncNet weights: missing ones raise
    ``WeightsError`` whose fix is ``facedrop weights fetch syncnet`` (the CLI shows it)."""
    video = Path(video)
    info = probe_video(video)
    if audio is None and not info.has_audio:
        raise InputError("the video has no sound track", file=video,
                         fix="give the speech with --audio FILE")
    net = syncnet_loader(syncnet_path(weights_dir))
    sound = load_audio(audio or video, max_seconds=max_seconds)
    frames = JpegFrames()
    for frame in at_25fps(iter_frames_timed(video), max_seconds, video):
        frames.append(bounded(frame))
    eyes: list[np.ndarray] = []
    landmarks, tracked = track_faces(frames, FaceLandmarker(weights_dir), eyes)
    report = quality_report(frames, landmarks, tracked, sound.samples, syncnet=net,
                            eye_ratios=filled(eyes))
    return ScoredVideo(report, frames, landmarks, sound.duration)

