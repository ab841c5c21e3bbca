"""Benchmark inputs and runs for ``facedrop bench``: figures, not assertions.

A bench job is the example photo, the example speech looped to the requested length, and a
driving clip (the library's default, or a short synthetic head sway made from the photo). The
chain runs twice in one process: a 1-second warm-up job renders the clip's frames (cold caches:
its animate row is the rendering cost), then the job of the requested length runs as a
repeat-avatar job (same face and clip: motion and rendered frames come from the caches), which
is what a returning user's job costs.
"""

from __future__ import annotations

import math
import tempfile
import wave
from pathlib import Path

import cv2
import numpy as np

from pipeline.chain.runner import Runner, fit_photo
from pipeline.media.audio import load_audio
from pipeline.media.image import load_image
from pipeline.media.video import VideoWriter
from pipeline.rss import peak_rss_mb
from pipeline.settings import PipelineSettings
from pipeline.spec import CancelToken, JobSpec, TimingRecord, no_progress


def looped_speech(source: Path, seconds: float, out: Path) -> Path:
    """``source`` decoded to 16 kHz mono and repeated to ``seconds``, written as a wav."""
    samples = load_audio(source).samples
    n = int(round(seconds * 16000))
    reps = math.ceil(n / len(samples))
    pcm = np.clip(np.tile(samples, reps)[:n] * 32767.0, -32768, 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return out


def sway_clip(photo: np.ndarray, out: Path, seconds: float = 0.4, fps: int = 25) -> Path:
    """A short driving clip: the photo tilting and nodding a few degrees (no audio)."""
    h, w = photo.shape[:2]
    h, w = h - h % 2, w - w % 2
    n = max(2, int(round(seconds * fps)))
    with VideoWriter(out, w, h, fps) as writer:
        for i in range(n):
            phase = 2 * math.pi * i / n
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * math.sin(phase), 1.0)
            m[1, 2] += 0.02 * h * math.sin(2 * phase)
            writer.write(cv2.warpAffine(photo[:h, :w], m, (w, h), borderMode=cv2.BORDER_REFLECT))
    return out


def bench_chain(settings: PipelineSettings, photo: Path, speech: Path, seconds: float,
                driving: str | None, lipsync: bool = True, enhance: bool = False,
                fps: float = 25.0) -> dict[str, object]:
    """A 1 s warm-up job (cold: renders), then ``seconds`` as a repeat-avatar job; both records."""
    runner = Runner(settings)
    with tempfile.TemporaryDirectory(prefix="facedrop-bench-") as tmp:
        work = Path(tmp)
        face = work / photo.name  # the job folder is ``work``: a clip file there is found by name
        face.write_bytes(photo.read_bytes())
        audio = {"cold": looped_speech(speech, 1.0, work / "warmup.wav"),
                 "repeat": looped_speech(speech, seconds, work / "speech.wav")}
        clip: str | Path | None = driving
        if not clip and not settings.default_driver:
            clip = sway_clip(fit_photo(load_image(photo), 512), work / "sway.mp4").name
        records: list[TimingRecord] = []
        for run in ("cold", "repeat"):
            job = JobSpec(name=f"bench-{run}", face=face, audio=audio[run], driving=clip,
                          output_name=f"{run}.mp4", fps=fps, lipsync=lipsync, enhance=enhance)
            records.append(runner.run(job, work / f"{run}.mp4", no_progress, CancelToken()))
    return {"seconds": seconds, "cold": records[0].to_json(), "repeat": records[1].to_json(),
            "peak_rss_mb": round(peak_rss_mb(), 1)}
