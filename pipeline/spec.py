"""The seam between the daemon and the pipeline: what goes in, what comes out.

The daemon validates a job folder into a ``JobSpec``, calls the pipeline with a progress callback
and a cancellation token, and gets a ``TimingRecord`` back. Nothing here does I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pipeline.errors import Cancelled


class CacheState(StrEnum):
    """Whether a stage could reuse earlier work."""

    HIT = "hit"
    MISS = "miss"
    SKIPPED = "skipped"  # the stage was switched off for this job
    NONE = "n/a"  # the stage has no cache


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job: every path exists inside the job folder, every value has its type."""

    name: str
    face: Path
    audio: Path
    driving: str | Path | None  # a library clip name, a video file, or None for the default clip
    output_name: str  # file name of the video, e.g. "hello.mp4"
    fps: float = 25.0
    lipsync: bool = True
    enhance: bool = False
    quality: bool = True  # score the video (quality.json, preview.jpg, poster.jpg)

    # the lip-sync engine job.yaml names (``lipsync: musetalk``); None: the configured one
    lipsync_engine: str | None = None

    # motion (README "Motion sources"); None everywhere: the config's value
    motion: str | None = None  # job.yaml ``motion:`` clip | voice | still; None: decided per job
    seed: int | None = None  # the seed of generated motion (voice, still)
    motion_steps: int | None = None  # voice sampler steps; None: the config's
    head_motion: float | None = None  # factor on the head's motion, 0.0-1.5
    face_motion: float | None = None  # factor on the face's expression, 0.0-1.5


# progress(stage, fraction in [0, 1]) -- called from the pipeline's thread, must not block.
ProgressFn = Callable[[str, float], None]


def no_progress(stage: str, fraction: float) -> None:
    """A progress callback that ignores progress."""


class CancelToken:
    """Set by the daemon (SIGTERM); checked by the pipeline at every chunk boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``Cancelled`` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("the job was cancelled before it finished", fix="it will be retried")


@dataclass(slots=True)
class StageTiming:
    """One stage's entry in ``timing.json``."""

    name: str
    seconds: float
    frames: int
    cache: CacheState = CacheState.NONE
    note: str = ""

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / self.frames if self.frames else 0.0


@dataclass(frozen=True, slots=True)
class JobQuality:
    """A job's quality verdict and the files that show it (``pipeline.quality.jobscore``).

    ``verdict`` is ``ok``, ``check`` (``reasons`` say why, in words) or ``not scored`` (``notes``
    say why: switched off, or a scoring error). ``files`` maps the outbox file names
    (quality.json, preview.jpg, poster.jpg) to their bytes; empty when nothing was scored.
    """

    verdict: str
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # parts not scored, and why
    headline: str = ""  # a few words for a notification: "check lip sync"
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """One line: ``ok``, ``check: reason; reason``, ``not scored (why)``."""
        text = self.verdict + (": " + "; ".join(self.reasons) if self.reasons else "")
        return text + (" (" + "; ".join(self.notes) + ")" if self.notes else "")

    def to_json(self) -> dict[str, object]:
        """The verdict without the files (timing.json, status.json, ``facedrop status``)."""
        return {"verdict": self.verdict, "reasons": list(self.reasons), "notes": list(self.notes),
                "headline": self.headline, "summary": self.summary()}


@dataclass(frozen=True, slots=True)
class MotionUsed:
    """The motion source a job used, why (in words), the clip's name or the seed."""

    source: str  # clip | voice | still
    reason: str
    seed: int | None = None  # of generated motion; None for a clip (nothing random)
    clip: str | None = None  # the driving clip's name, for a clip

    def summary(self) -> str:
        """``still motion, seed 1: job.yaml says motion: still``."""
        what = f" '{self.clip}'" if self.clip else ""
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"{self.source}{what} motion{seed}: {self.reason}"


@dataclass(slots=True)
class TimingRecord:
    """The timing log of one job (DESIGN.md, ``timing.json``)."""

    job: str
    device: str
    dtype: str
    frames: int = 0
    fps: float = 25.0
    audio_seconds: float = 0.0
    model_load_seconds: float = 0.0
    stages: list[StageTiming] = field(default_factory=list)
    total_seconds: float = 0.0
    quality: JobQuality | None = None  # None: this pipeline does not score its videos
    motion: MotionUsed | None = None  # None: a pipeline that does not say

    @property
    def realtime_factor(self) -> float:
        """Video seconds per wall-clock second (>1 is faster than real time)."""
        video_seconds = self.frames / self.fps if self.fps else 0.0
        return video_seconds / self.total_seconds if self.total_seconds else 0.0

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict with derived figures included."""
        data = asdict(replace(self, quality=None))  # the picture bytes stay out
        data["quality"] = self.quality.to_json() if self.quality is not None else None
        data["stages"] = [
            {**asdict(s), "cache": s.cache.value, "ms_per_frame": round(s.ms_per_frame, 3)}
            for s in self.stages
        ]
        data["realtime_factor"] = round(self.realtime_factor, 4)
        return data

    def to_table(self) -> str:
        """``timing.log``: the same figures as a plain-text table a person can read."""
        head = (
            f"job {self.job}  device {self.device}  dtype {self.dtype}  frames {self.frames}"
            f"  fps {self.fps:g}  audio {self.audio_seconds:.2f} s\n"
            f"model load {self.model_load_seconds:.2f} s\n"
            + (f"motion: {self.motion.summary()}\n" if self.motion is not None else "")
            + "\n"
        )
        rows = [f"{'stage':<12}{'seconds':>10}{'frames':>8}{'ms/frame':>10}  {'cache':<8}note"]
        for s in self.stages:
            rows.append(
                f"{s.name:<12}{s.seconds:>10.2f}{s.frames:>8}{s.ms_per_frame:>10.1f}"
                f"  {s.cache.value:<8}{s.note}"
            )
        rows.append(
            f"{'total':<12}{self.total_seconds:>10.2f}{self.frames:>8}"
            f"{1000 * self.total_seconds / max(self.frames, 1):>10.1f}"
            f"  realtime factor {self.realtime_factor:.3f}x"
        )
        if self.quality is not None:
            rows.append(f"\nquality: {self.quality.summary()}")
        return head + "\n".join(rows) + "\n"


class Pipeline(Protocol):
    """What the daemon calls: one job in, one video (at ``output``) and its timing out."""

    def run(
        self, job: JobSpec, output: Path, progress: ProgressFn, cancel: CancelToken
    ) -> TimingRecord: ...
