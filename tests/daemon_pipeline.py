"""A stand-in pipeline for the daemon's tests: real media work, no models.

It reads the job's photo and audio, renders a small video of the photo with a moving bar (one
frame per 1/fps of audio), encodes H.264 yuv420p + AAC with PyAV and reports progress per chunk,
honouring the cancel token between chunks -- the same contract as ``pipeline.runner.Runner``.

Test hooks (environment variables, read per job so a running daemon picks them up):
  FACEDROP_TEST_RUNLOG      append "<job>\\t<pid>\\tstart|end" lines to this file
  FACEDROP_TEST_CHUNK_SLEEP seconds to sleep after each chunk (to kill or stop a daemon mid-job)
  FACEDROP_TEST_SLOW_JOBS   comma-separated job names the sleep applies to (all if unset)
  FACEDROP_TEST_FAIL_JOBS   comma-separated job names whose every run raises RuntimeError
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from pipeline.settings import PipelineSettings
from pipeline.spec import CancelToken, JobSpec, ProgressFn, StageTiming, TimingRecord

CHUNK = 8
LONG_SIDE = 64


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    return None if value is None else {n for n in value.split(",") if n}


def _log(job: str, what: str) -> None:
    path = os.environ.get("FACEDROP_TEST_RUNLOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{job}\t{os.getpid()}\t{what}\n")


def _photo(path: Path) -> np.ndarray:
    """The photo scaled so its long side is LONG_SIDE, with even dimensions (yuv420p)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = LONG_SIDE / max(img.size)
        w = max(2, round(img.width * scale) // 2 * 2)
        h = max(2, round(img.height * scale) // 2 * 2)
        return np.asarray(img.resize((w, h)))


def _audio_frames(path: Path) -> tuple[list[av.AudioFrame], float]:
    """The audio decoded and resampled to 16 kHz mono float planar, and its duration."""
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
    frames, samples = [], 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                frames.append(out)
                samples += out.samples
    for out in resampler.resample(None):
        frames.append(out)
        samples += out.samples
    return frames, samples / 16000


class TestPipeline:
    """Implements ``pipeline.spec.Pipeline`` with real encoding and no models."""

    __test__ = False  # not a pytest test class

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    def run(
        self, job: JobSpec, output: Path, progress: ProgressFn, cancel: CancelToken
    ) -> TimingRecord:
        start = time.perf_counter()
        _log(job.name, "start")
        if job.name in (_names("FACEDROP_TEST_FAIL_JOBS") or set()):
            raise RuntimeError(f"test pipeline told to fail {job.name}")
        slow = _names("FACEDROP_TEST_SLOW_JOBS")
        pause = float(os.environ.get("FACEDROP_TEST_CHUNK_SLEEP", "0"))
        if slow is not None and job.name not in slow:
            pause = 0.0
        photo = _photo(job.face)
        audio, seconds = _audio_frames(job.audio)
        n_frames = max(1, round(seconds * job.fps))
        fps = Fraction(job.fps).limit_denominator(1001)
        with av.open(str(output), "w", options={"movflags": "faststart"}) as out:
            vstream = out.add_stream("libx264", rate=fps)
            vstream.width, vstream.height = photo.shape[1], photo.shape[0]
            vstream.pix_fmt = "yuv420p"
            astream = out.add_stream("aac", rate=16000, layout="mono")
            for frame in audio:
                frame.pts = None
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
            for first in range(0, n_frames, CHUNK):
                cancel.raise_if_cancelled()  # chunk boundary
                for i in range(first, min(first + CHUNK, n_frames)):
                    img = photo.copy()
                    img[:, i % img.shape[1]] = 255  # a moving bar: every frame differs
                    out.mux(vstream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
                progress("render", min(1.0, (first + CHUNK) / n_frames))
                if pause:
                    time.sleep(pause)
            out.mux(vstream.encode(None))
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
        )
