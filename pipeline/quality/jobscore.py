"""Scoring inside a job: the sampled final frames are kept while the chain composes them, and
scored when the video is encoded. Nothing is decoded again and no frame is kept beyond the
sample (``pipeline.quality.sampling``).

The runner's side is three calls: ``begin`` (once the landmarks of the distinct crops are
known), ``see`` (the composer's observer, once per chunk) and ``finish`` (after encoding),
which returns a ``JobQuality``: the verdict and the bytes of quality.json, preview.jpg and
poster.jpg for the outbox to write. None of them ever raises: scoring never fails a job. A
scoring error is logged and the verdict is ``not scored`` with the reason; missing or broken
SyncNet weights (an optional download) only leave lip sync unscored.

Where the figures come from in a job:

* frames: the final RGB frames (after paste-back), at the job's rate, read on the 25 fps
  timeline SyncNet needs (frame ``floor(k * fps / 25)`` at time ``k / 25``);
* landmarks: the tracked landmarks of each distinct rendered crop (the ones lip sync used),
  mapped into the frame by the paste-back transform; a crop whose face the tracker lost
  (``FlaggingTracker``) counts as not tracked;
* seam: measured in the 512 crop space on the crops just before and just after lip sync (the
  step the mouth patch leaves at its edge), at the sampled seam frames; absent without lip sync.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import FacedropError
from pipeline.face.affine import Affine
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.steady import SteadyTracker
from pipeline.media.lazy_frames import LazyFrames
from pipeline.models.syncnet import WINDOW_FRAMES, SyncNet
from pipeline.quality import measures
from pipeline.quality.crop import crop_face, crop_tracks
from pipeline.quality.eyes import CropEyes
from pipeline.quality.measures import Verdict, limits_of
from pipeline.quality.outputs import POSTER_JPG, PREVIEW_JPG, QUALITY_JSON, SYNCNET_PNG
from pipeline.quality.pictures import confidence_image, encode_jpeg, encode_png, preview_image
from pipeline.quality.posestrip import with_pose_strip
from pipeline.quality.report import QualityReport, quality_report
from pipeline.quality.sampling import SamplePlan, plan_sample
from pipeline.quality.syncscore import FPS
from pipeline.spec import JobQuality

log = logging.getLogger("facedrop.quality")

OFF_NOTE = "switched off (quality: false)"
# A failing measure in a few words, for the notification ("done — check lip sync").
SHORT: dict[str, str] = {
    "lse_c": "lip sync", "lse_d": "lip sync", "av_offset_frames": "audio offset",
    "tracked_share": "face tracking", "landmark_jitter_px": "jitter", "seam_step": "mouth seam",
    "flicker": "flicker", "duration_gap_s": "length",
}


def switched_off() -> JobQuality:
    """The verdict of a job whose scoring is off: nothing written, and it says so."""
    return JobQuality(Verdict.NOT_SCORED.value, notes=(OFF_NOTE,), headline="not scored")


def not_scored(reason: str) -> JobQuality:
    return JobQuality(Verdict.NOT_SCORED.value, notes=(f"scoring failed: {reason}",),
                      headline="not scored")


def headline(report: QualityReport) -> str:
    """``check lip sync and flicker``, ``ok``, or ``not scored``."""
    if report.verdict is Verdict.CHECK:
        words = dict.fromkeys(SHORT.get(m.name, m.name) for m in report.measures
                              if m.verdict is Verdict.CHECK)
        return "check " + " and ".join(words)
    return report.verdict.value


class FlaggingTracker(SteadyTracker):
    """A ``SteadyTracker`` that records, per ``track`` call, whether the face was found."""

    def __init__(self, landmarker: FaceLandmarker) -> None:
        super().__init__(landmarker)
        self.tracked: list[bool] = []

    def track(self, rgb: np.ndarray, prev_landmarks: np.ndarray) -> np.ndarray:
        lost = self.lost
        out = super().track(rgb, prev_landmarks)
        self.tracked.append(self.lost == lost)
        return out


@dataclass(frozen=True)
class Timeline:
    """The 25 fps timeline over ``n_out`` frames at ``fps``."""

    n_out: int
    fps: float

    @property
    def n25(self) -> int:
        return max(1, math.floor(self.n_out * FPS / self.fps + 1e-6)) if self.n_out else 0

    def out_index(self, k25: int) -> int:
        """The output frame shown at time ``k25 / 25``."""
        return min(self.n_out - 1, math.floor(k25 * self.fps / FPS + 1e-6))


class Held(LazyFrames):
    """A sequence of ``length`` pictures (frames or face crops by 25 fps frame) of which only
    the sampled ones are held; reading another one is a bug of the plan."""

    def __init__(self, length: int, held: Mapping[int, np.ndarray]) -> None:
        self.length, self.held = length, held

    def __len__(self) -> int:
        return self.length

    def _frame(self, k: int) -> np.ndarray:
        if k not in self.held:
            raise LookupError(f"frame {k} is not in the sample")
        return self.held[k]


def _by_output(timeline: Timeline, ks: Iterable[int]) -> dict[int, list[int]]:
    """Output frame -> the 25 fps frames (among ``ks``) it shows."""
    out: dict[int, list[int]] = {}
    for k in sorted(set(ks)):
        out.setdefault(timeline.out_index(k), []).append(k)
    return out


@dataclass
class _Job:
    """What ``begin`` learnt about the job, and the sample kept while frames stream past.

    Memory stays small for any length: whole frames only for the preview and the poster,
    SyncNet's 224x224 face crops for the sampled windows, and one frame per flicker pair until
    its second frame arrives (the pair's change is measured then).
    """

    timeline: Timeline
    plan: SamplePlan
    landmarks: np.ndarray  # (n25, 468, 2) frame pixels
    tracked: list[bool]  # per 25 fps frame
    audio: np.ndarray
    tracks: np.ndarray  # (n25, 3) SyncNet crop boxes (s, x, y)
    keep: dict[int, list[int]]  # output frame -> 25 fps frames shown whole (preview, poster)
    crop: dict[int, list[int]]  # output frame -> 25 fps frames of SyncNet windows
    pair_first: dict[int, list[int]]  # output frame -> pairs k it starts (frame k - 1)
    pair_second: dict[int, list[int]]  # output frame -> pairs k it ends (frame k)
    seam_at: dict[int, np.ndarray]  # output frame -> its crop's landmarks (crop pixels)
    crop_ids: list[int]  # per 25 fps frame: its distinct crop
    eyes: CropEyes | None  # raw eye ratios per distinct crop, for the blink count
    order: np.ndarray  # output frame -> distinct crop
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    crops: dict[int, np.ndarray] = field(default_factory=dict)
    waiting: dict[int, np.ndarray] = field(default_factory=dict)  # pair k -> frame k - 1
    changes: list[float] = field(default_factory=list)  # flicker per pair
    seam: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def see(self, i: int, frame: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
        """Output frame ``i`` (final) and its crop before and after lip sync."""
        for k in self.keep.get(i, ()):
            self.frames[k] = np.array(frame, copy=True)
        if self.eyes is not None:
            self.eyes.see(int(self.order[i]), before)
        if i in self.crop:
            bgr = np.ascontiguousarray(frame[..., ::-1])
            for k in self.crop[i]:
                self.crops[k] = crop_face(bgr, *self.tracks[k])
        for k in self.pair_first.get(i, ()):
            self.waiting[k] = np.array(frame, copy=True)
        for k in self.pair_second.get(i, ()):
            prev = self.waiting.pop(k)
            change = measures.flicker_change(prev, frame, self.landmarks[k - 1],
                                             self.landmarks[k])
            if change is not None:
                self.changes.append(change)
        if i in self.seam_at and after is not before:
            self.seam.append((np.asarray(after), np.asarray(before), self.seam_at[i]))


class JobScorer:
    """Keeps the sample while the chain composes; scores it at the end. Never raises."""

    def __init__(self, limits: Mapping[str, float], syncnet: Callable[[], SyncNet],
                 clock: Callable[[], float] = time.perf_counter,
                 landmarker: Callable[[], FaceLandmarker] | None = None) -> None:
        self._limits = dict(limits)
        self._landmarker = landmarker  # the eyelids of each distinct crop (blinks), if given
        self._syncnet = syncnet
        self._clock = clock
        self._job: _Job | None = None
        self._error = ""
        self.seconds = 0.0  # time spent in this scorer (begin + see + finish)

    def begin(self, *, order: np.ndarray, crop_landmarks: Sequence[np.ndarray],
              tracked: Sequence[bool], crop_to_frame: Affine, fps: float,
              audio: np.ndarray) -> None:
        """Plan the sample: ``order[i]`` is output frame i's distinct crop, whose landmarks (crop
        pixels) and tracked flag are ``crop_landmarks[k]`` / ``tracked[k]``."""
        t0 = self._clock()
        try:
            self._job = self._plan(np.asarray(order), crop_landmarks, tracked, crop_to_frame,
                                   fps, audio)
        except Exception as exc:  # scoring never fails a job
            self._fail(exc)
        self.seconds += self._clock() - t0

    def _plan(self, order: np.ndarray, crop_landmarks: Sequence[np.ndarray],
              tracked: Sequence[bool], crop_to_frame: Affine, fps: float,
              audio: np.ndarray) -> _Job:
        timeline = Timeline(len(order), fps)
        if timeline.n25 < 1 or not len(crop_landmarks):
            raise ValueError("the video has no frames with landmarks")
        outs = [timeline.out_index(k) for k in range(timeline.n25)]
        crops = [int(order[i]) for i in outs]
        lmk = crop_to_frame.apply(np.stack([np.asarray(crop_landmarks[c])[:, :2]
                                            for c in crops]))
        flags = [bool(tracked[c]) if c < len(tracked) else True for c in crops]
        plan = plan_sample(timeline.n25, len(audio), lmk, flags)
        windows = {int(i) + j for i in plan.window_starts for j in range(WINDOW_FRAMES)}
        eyes = (CropEyes(self._landmarker, crop_landmarks) if self._landmarker is not None
                else None)
        return _Job(
            timeline, plan, lmk, flags, audio, tracks=crop_tracks(lmk), crop_ids=crops,
            eyes=eyes, order=order,
            keep=_by_output(timeline, [*plan.preview_frames, plan.poster_frame]),
            crop=_by_output(timeline, windows),
            pair_first={i: [k + 1 for k in ks] for i, ks in _by_output(
                timeline, [k - 1 for k in plan.flicker_pairs]).items()},
            pair_second=_by_output(timeline, plan.flicker_pairs),
            seam_at={timeline.out_index(k): np.asarray(
                crop_landmarks[int(order[timeline.out_index(k)])])[:, :2]
                for k in plan.seam_frames})

    def see(self, start: int, before: Sequence[np.ndarray], after: Sequence[np.ndarray],
            frames: np.ndarray) -> None:
        """The composer's observer: output frames ``start ..`` (final), and their crops just
        before and after lip sync (the same objects when there is no lip sync)."""
        job = self._job
        if job is None:
            return
        t0 = self._clock()
        try:
            for j, frame in enumerate(frames):
                job.see(start + j, frame, before[j], after[j])
        except Exception as exc:
            self._fail(exc)
        self.seconds += self._clock() - t0

    def finish(self) -> JobQuality:
        """Score the sample: the verdict and the three files' bytes."""
        t0 = self._clock()
        try:
            if self._job is None:
                raise RuntimeError(self._error or "scoring was never started")
            result = self._score(self._job, t0)
        except Exception as exc:
            self._fail(exc)
            result = not_scored(self._error)
        self._job = None  # the frames are not kept beyond the job
        self.seconds += self._clock() - t0
        return result

    def _score(self, job: _Job, t0: float) -> JobQuality:
        net, why = self._load_syncnet()
        frames = Held(job.timeline.n25, job.frames)
        thresholds = limits_of(self._limits)
        report = quality_report(frames, job.landmarks, job.tracked, job.audio, syncnet=net,
                                not_scored_reason=why, plan=job.plan, thresholds=thresholds,
                                crops=Held(job.timeline.n25, job.crops),
                                flicker_changes=job.changes,
                                eye_ratios=job.eyes.series(job.crop_ids) if job.eyes else None)
        if job.seam:
            after, before, lmk = zip(*job.seam, strict=True)
            seam = measures.seam_step(after, before, np.stack(lmk))
            report.measures.insert(2, measures.rejudged(seam, thresholds))
        sheet, times = preview_image(frames, job.landmarks, FPS)
        sheet = with_pose_strip(sheet, report.motion)
        poster = encode_jpeg(frames[job.plan.poster_frame], quality=92)
        preview = encode_jpeg(sheet)
        report.seconds = self.seconds + self._clock() - t0
        data = report.as_dict()
        data["sampling"] = job.plan.describe()
        data["preview_times_s"] = [round(t, 3) for t in times]
        data["poster_time_s"] = round(job.plan.poster_frame / FPS, 3)
        data["video_frames"] = job.timeline.n_out
        data["video_fps"] = job.timeline.fps
        files = {QUALITY_JSON: (json.dumps(data, indent=2) + "\n").encode(),
                 PREVIEW_JPG: preview, POSTER_JPG: poster}
        if report.sync is not None and len(report.sync.framewise_conf):
            # the sampled windows' confidence over time, for the studio page's result
            files[SYNCNET_PNG] = encode_png(confidence_image(report.sync))
        return JobQuality(report.verdict.value, tuple(report.reasons), tuple(report.notes),
                          headline(report), files)

    def _load_syncnet(self) -> tuple[SyncNet | None, str]:
        try:
            return self._syncnet(), ""
        except Exception as exc:  # missing or broken weights: an optional download
            why = exc.problem if isinstance(exc, FacedropError) else f"{type(exc).__name__}: {exc}"
            log.warning("lip sync not scored: %s", why)
            return None, why

    def _fail(self, exc: Exception) -> None:
        if not self._error:
            problem = exc.problem if isinstance(exc, FacedropError) else (
                f"{type(exc).__name__}: {exc}")
            self._error = problem
            log.error("quality scoring failed: %s", problem, exc_info=exc)
        self._job = None
