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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from pipeline.errors import FacedropError
from pipeline.face.affine import Affine
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.steady import SteadyTracker
from pipeline.models.syncnet import SyncNet
from pipeline.quality import measures
from pipeline.quality.measures import Verdict, limits_of
from pipeline.quality.outputs import POSTER_JPG, PREVIEW_JPG, QUALITY_JSON
from pipeline.quality.pictures import encode_jpeg, preview_image
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


class SampledFrames(Sequence[np.ndarray]):
    """The 25 fps frames of a job, of which only the sampled ones are held."""

    def __init__(self, timeline: Timeline, held: Mapping[int, np.ndarray]) -> None:
        self.timeline, self.held = timeline, held

    def __len__(self) -> int:
        return self.timeline.n25

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, k: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not 0 <= k < len(self):
            raise IndexError(k)
        i = self.timeline.out_index(k)
        if i not in self.held:  # a bug: the plan and the reads disagree
            raise LookupError(f"frame {k} (output frame {i}) is not in the sample")
        return self.held[i]


@dataclass
class _Job:
    """What ``begin`` learnt about the job."""

    timeline: Timeline
    plan: SamplePlan
    landmarks: np.ndarray  # (n25, 468, 2) frame pixels
    tracked: list[bool]  # per 25 fps frame
    audio: np.ndarray
    wanted: set[int]  # output frames whose pixels are kept
    seam_at: dict[int, np.ndarray]  # output frame -> its crop's landmarks (crop pixels)
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    seam: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


class JobScorer:
    """Keeps the sample while the chain composes; scores it at the end. Never raises."""

    def __init__(self, limits: Mapping[str, float], syncnet: Callable[[], SyncNet],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._limits = dict(limits)
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
        return _Job(timeline, plan, lmk, flags, audio,
                    wanted={timeline.out_index(k) for k in plan.pixel_frames()},
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
                i = start + j
                if i in job.wanted:
                    job.frames[i] = np.array(frame, copy=True)
                if i in job.seam_at and after[j] is not before[j]:
                    job.seam.append((np.asarray(after[j]), np.asarray(before[j]),
                                     job.seam_at[i]))
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
        frames = SampledFrames(job.timeline, job.frames)
        thresholds = limits_of(self._limits)
        report = quality_report(frames, job.landmarks, job.tracked, job.audio, syncnet=net,
                                not_scored_reason=why, plan=job.plan, thresholds=thresholds)
        if job.seam:
            after, before, lmk = zip(*job.seam, strict=True)
            seam = measures.seam_step(after, before, np.stack(lmk))
            report.measures.insert(2, measures.rejudged(seam, thresholds))
        sheet, times = preview_image(frames, job.landmarks, FPS)
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
