"""A stand-in pipeline for the daemon's tests: real media work, no models.

It reads the job's photo and audio through the media layer (``pipeline.media``), renders a small
video of the photo with a moving bar (one frame per 1/fps of audio), writes it with the media
layer's ``VideoWriter`` (H.264 yuv420p + the original audio as AAC) and reports progress per chunk,
honouring the cancel token between chunks -- the same contract as ``pipeline.chain.runner.Runner``.

Test hooks (environment variables, read per job so a running daemon picks them up):
  FACEDROP_TEST_RUNLOG      append "<job>\\t<pid>\\t<unix time>\\tstart|end" lines to this file
  FACEDROP_TEST_CHUNK_SLEEP seconds to sleep after each chunk (to kill or stop a daemon mid-job)
  FACEDROP_TEST_SLOW_JOBS   comma-separated job names the sleep applies to (all if unset)
  FACEDROP_TEST_FAIL_JOBS   comma-separated job names whose every run raises RuntimeError
  FACEDROP_TEST_QUALITY     set: the job gets a quality verdict ("check", one reason) with a
                            poster, a preview sheet and quality.json made from its own frames
  FACEDROP_TEST_SEGFAULT_JOBS  job names whose every run segfaults (a NULL read through ctypes)
                            right after saying it decodes the audio file, as a decoder would
  FACEDROP_TEST_ABORT_JOBS  job names whose every run calls os.abort() (SIGABRT)
  FACEDROP_TEST_STUCK_JOBS  job names whose run hangs for a minute, deaf to cancellation (as a
                            stuck model call would)
  FACEDROP_TEST_WEIGHTS     a file name the run needs in the configured weights folder (as the
                            real runner needs its checkpoints); missing: ``WeightsError``
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.errors import WeightsError
from pipeline.media.audio import load_audio
from pipeline.media.image import load_image
from pipeline.media.video import VideoWriter
from pipeline.settings import PipelineSettings
from pipeline.spec import (
    CancelToken,
    JobQuality,
    JobSpec,
    ProgressFn,
    StageTiming,
    TimingRecord,
)

CHUNK = 8
LONG_SIDE = 64


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    return None if value is None else {n for n in value.split(",") if n}


def _log(job: str, what: str) -> None:
    path = os.environ.get("FACEDROP_TEST_RUNLOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{job}\t{os.getpid()}\t{time.time():.6f}\t{what}\n")


def _photo(path: Path, max_pixels: int) -> np.ndarray:
    """The photo (via the media layer) scaled to a LONG_SIDE long side, even dimensions."""
    rgb = load_image(path, max_pixels)
    scale = LONG_SIDE / max(rgb.shape[:2])
    w = max(2, round(rgb.shape[1] * scale) // 2 * 2)
    h = max(2, round(rgb.shape[0] * scale) // 2 * 2)
    return np.asarray(Image.fromarray(rgb).resize((w, h)))


class TestPipeline:
    """Implements ``pipeline.spec.Pipeline`` with real encoding and no models."""

    __test__ = False  # not a pytest test class

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    def run(
        self, job: JobSpec, output: Path, progress: ProgressFn, cancel: CancelToken
    ) -> TimingRecord:
        start = time.perf_counter()
        weights = os.environ.get("FACEDROP_TEST_WEIGHTS")
        if weights and not (self.settings.weights_dir / weights).is_file():
            raise WeightsError(
                "the stand-in model's weights are missing",
                file=self.settings.weights_dir / weights,
                fix="run 'facedrop weights fetch'",
            )
        _log(job.name, "start")
        if job.name in (_names("FACEDROP_TEST_FAIL_JOBS") or set()):
            raise RuntimeError(f"test pipeline told to fail {job.name}")
        if job.name in (_names("FACEDROP_TEST_SEGFAULT_JOBS") or set()):
            from pipeline.media import phase

            phase.decoding(job.audio, "the audio file")
            ctypes.string_at(0)  # a real SIGSEGV: reads address 0
        if job.name in (_names("FACEDROP_TEST_ABORT_JOBS") or set()):
            os.abort()
        if job.name in (_names("FACEDROP_TEST_STUCK_JOBS") or set()):
            time.sleep(60)
        slow = _names("FACEDROP_TEST_SLOW_JOBS")
        pause = float(os.environ.get("FACEDROP_TEST_CHUNK_SLEEP", "0"))
        if slow is not None and job.name not in slow:
            pause = 0.0
        photo = _photo(job.face, self.settings.max_image_pixels)
        seconds = load_audio(job.audio, self.settings.max_audio_seconds).duration
        n_frames = max(1, round(seconds * job.fps))
        shown: list[np.ndarray] = []
        with VideoWriter(output, photo.shape[1], photo.shape[0], job.fps, job.audio) as writer:
            for first in range(0, n_frames, CHUNK):
                cancel.raise_if_cancelled()  # chunk boundary
                for i in range(first, min(first + CHUNK, n_frames)):
                    img = photo.copy()
                    img[:, i % img.shape[1]] = 255  # a moving bar: every frame differs
                    writer.write(img)
                    if i % CHUNK == 0 and len(shown) < 4:
                        shown.append(img)
                progress("render", min(1.0, (first + CHUNK) / n_frames))
                if pause:
                    time.sleep(pause)
        total = time.perf_counter() - start
        _log(job.name, "end")
        return TimingRecord(
            job=job.name,
            device="cpu",
            dtype="fp32",
            frames=n_frames,
            fps=float(job.fps),
            audio_seconds=seconds,
            stages=[StageTiming("render", total, n_frames)],
            total_seconds=total,
            quality=_quality(shown) if os.environ.get("FACEDROP_TEST_QUALITY") else None,
        )


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


def _quality(frames: list[np.ndarray]) -> JobQuality:
    """A verdict with its files, made from the job's own frames (the scoring's file contract)."""
    reasons = ("lip sync is weak (stand-in pipeline)",)
    report = {"verdict": "check", "reasons": list(reasons)}
    return JobQuality(
        verdict="check", reasons=reasons, headline="check lip sync",
        files={"poster.jpg": _jpeg(frames[0]), "preview.jpg": _jpeg(np.concatenate(frames, 1)),
               "quality.json": json.dumps(report).encode()},
    )
