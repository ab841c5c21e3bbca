"""``quality_report``: every measure of one video, with its verdict, in one call.

What it needs (all already in memory at the end of a job, or decoded by ``facedrop score``):

* ``frames``: the final RGB uint8 frames at 25 fps (SyncNet's rate; resample other rates first,
  as the official pipeline does), a ``Sequence`` (list or array), not re-read;
* ``landmarks``: (T, 468, 2) FaceMesh landmarks of those frames, image pixels;
* ``tracked``: per frame, whether its landmarks were tracked (False: carried over);
* ``audio``: the 16 kHz mono float samples in [-1, 1] that play with the video;
* ``syncnet``: the loaded network, or ``None`` (then lip sync is "not scored", with the reason);
* ``before``: the frames before lip sync (for the seam measure), or ``None`` to skip it.

Cost, measured on the example job's length (5.88 s, 147 frames of 512x512 at 25 fps, random
SyncNet weights, torch 2.13 CPU, 2 threads) while about 12 other processes shared the 2 cores
(load average 13), so as CPU time of this process (``clock=time.process_time``), which is
about what an idle 2-core machine needs in wall time, up to 2x less where both threads run:

* everything official (``video_stride=1``, 142 windows): 1.9 CPU-s per second of video;
* ``video_stride=25`` (one window a second): 0.58 CPU-s per s; ``50``: 0.29; ``75``: 0.29;
* the cheap measures alone (sampled flicker and seam): 30 CPU-ms per s.

Per window: SyncNet's video stream about 65 CPU-ms, its audio stream 10-20 (and each
sampled video window needs the 31 audio windows around it), a crop about 2, MFCC 5 per second.
Even one window a second costs several times the 5% target of a repeat-avatar job, mostly
its audio windows; a job therefore scores a sample (``pipeline.quality.sampling``: clusters of
consecutive windows sharing their audio windows, and fewer flicker and seam frames) through
``pipeline.quality.jobscore``, while ``facedrop score`` scores every window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import FacedropError
from pipeline.media.mfcc import int16_samples
from pipeline.models.syncnet import SyncNet
from pipeline.quality import measures
from pipeline.quality.crop import LazyCrops
from pipeline.quality.headmotion import HeadMotion, head_motion
from pipeline.quality.measures import Measure, Threshold, Verdict, judge
from pipeline.quality.sampling import SamplePlan
from pipeline.quality.syncscore import FPS, Crops, SyncScore, score_crops

FLICKER_PAIRS_PER_SECOND = 5  # frame pairs the flicker measure samples
SEAM_FRAMES_PER_SECOND = 2


@dataclass
class QualityReport:
    measures: list[Measure]
    sync: SyncScore | None
    notes: list[str] = field(default_factory=list)  # parts not scored, and why
    seconds: float = 0.0  # time spent scoring
    video_seconds: float = 0.0
    motion: HeadMotion | None = None  # head-motion figures (descriptive: no verdict)

    @property
    def verdict(self) -> Verdict:
        if any(m.verdict is Verdict.CHECK for m in self.measures):
            return Verdict.CHECK
        return Verdict.OK if self.measures else Verdict.NOT_SCORED

    @property
    def reasons(self) -> list[str]:
        return [m.reason for m in self.measures if m.verdict is Verdict.CHECK]

    def summary(self) -> str:
        """One line: ``ok``, or ``check: reason; reason``, plus what was not scored."""
        text = self.verdict.value
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text

    def as_dict(self) -> dict[str, object]:
        """What ``quality.json`` holds."""
        out: dict[str, object] = {
            "verdict": self.verdict.value,
            "reasons": self.reasons,
            "not_scored": self.notes,
            "measures": {m.name: m.as_dict() for m in self.measures},
            "scoring_seconds": round(self.seconds, 3),
            "video_seconds": round(self.video_seconds, 3),
            "head_motion": self.motion.as_dict() if self.motion is not None else None,
        }
        if self.sync is not None:
            s = self.sync
            out["syncnet"] = {
                "lse_c": round(s.confidence, 4), "lse_d": round(s.min_dist, 4),
                "offset_frames": s.offset, "offset_seconds": round(s.offset_seconds, 4),
                "offset_sign": "positive: the audio is ahead of the lips",
                "windows": len(s.window_starts), "fps": s.fps,
                "framewise_confidence": [round(float(c), 3) for c in s.framewise_conf],
                "window_start_frames": [int(i) for i in s.window_starts],
            }
        return out


def sync_measures(score: SyncScore, thresholds: dict[str, Threshold] | None = None
                  ) -> list[Measure]:
    return [judge("lse_c", score.confidence, "", thresholds),
            judge("lse_d", score.min_dist, "", thresholds),
            judge("av_offset_frames", float(score.offset), "frames", thresholds, absolute=True)]


def _spread(n: int, count: int, start: int = 0) -> list[int]:
    """``count`` indices spread evenly over ``start .. n-1`` (all of them if fewer)."""
    if n - start <= count:
        return list(range(start, n))
    return sorted({int(round(x)) for x in np.linspace(start, n - 1, count)})


def quality_report(frames: Sequence[np.ndarray], landmarks: np.ndarray, tracked: Sequence[bool],
                   audio: np.ndarray, *, syncnet: SyncNet | None,
                   before: Sequence[np.ndarray] | None = None, video_stride: int = 1,
                   not_scored_reason: str = "the SyncNet weights are not installed",
                   clock: Callable[[], float] = time.perf_counter,
                   plan: SamplePlan | None = None,
                   thresholds: dict[str, Threshold] | None = None,
                   crops: Crops | None = None,
                   flicker_changes: Sequence[float] | None = None,
                   eye_ratios: np.ndarray | None = None) -> QualityReport:
    """Score one video (see the module docstring for what each argument is).

    A job's own scoring (``pipeline.quality.jobscore``) passes its ``plan``: SyncNet reads only
    its windows, from ``crops`` (SyncNet's face crops by frame, cut while the frames streamed
    past), and the flicker is the mean of the ``flicker_changes`` measured then; ``frames``
    are read only where ``before`` is given (the seam, at ``plan.seam_frames``).
    ``thresholds``: the config's. ``eye_ratios``: (T, 2) raw eye ratios per frame for the
    blink count (``pipeline.quality.headmotion``), or None (blinks not counted).
    Never raises for a scoring problem of lip sync: a ``FacedropError`` there (a clip too
    short, a crop outside the frame) becomes a note and the other measures still count.
    """
    tick = clock
    t0 = tick()
    n = len(frames)
    lmk = np.asarray(landmarks, np.float64)[..., :2]
    video_seconds = n / FPS
    pairs = plan.flicker_pairs if plan is not None else _spread(
        n, int(FLICKER_PAIRS_PER_SECOND * video_seconds) + 1, start=1)
    flicker = (measures.flicker_of(flicker_changes) if flicker_changes is not None
               else measures.flicker(frames, lmk, pairs))
    found = [measures.tracked_share(tracked), measures.landmark_jitter(lmk), flicker,
             measures.duration_gap(len(audio) / 16000, video_seconds)]
    notes: list[str] = []
    if before is not None:
        idx = plan.seam_frames if plan is not None else _spread(
            n, int(SEAM_FRAMES_PER_SECOND * video_seconds) + 1)
        found.insert(2, measures.seam_step([frames[i] for i in idx], [before[i] for i in idx],
                                           lmk[idx]))
    score = None
    if syncnet is None:
        notes.append(f"lip sync not scored: {not_scored_reason}")
    else:
        try:
            face_crops = LazyCrops(frames, lmk) if crops is None else crops
            score = score_crops(syncnet, face_crops, int16_samples(audio),
                                video_stride=video_stride,
                                video_starts=plan.window_starts if plan is not None else None)
            found.extend(sync_measures(score))
        except (FacedropError, ValueError) as exc:
            notes.append(f"lip sync not scored: {getattr(exc, 'problem', exc)}")
    if thresholds is not None:
        found = [measures.rejudged(m, thresholds) for m in found]
    motion = None
    try:  # landmarks only: a few ms for minutes of video
        motion = head_motion(lmk, FPS, eye_ratios)  # blinks None without eye ratios
    except (ValueError, np.linalg.LinAlgError) as exc:
        notes.append(f"head motion not measured: {exc}")
    return QualityReport(found, score, notes, seconds=tick() - t0, video_seconds=video_seconds,
                         motion=motion)
