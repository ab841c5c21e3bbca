"""Benchmark inputs and runs for ``facedrop bench``: figures, not assertions.

One function per bench mode, each loading what it needs from the settings, so the command line
only parses arguments and prints:

- ``bench_chain``: the whole chain. A bench job is the example photo, the example speech looped
  to the requested length, and a driving clip (the library's default, or a short synthetic head
  sway made from the photo). The chain runs twice in one process: a 1-second warm-up job renders
  the clip's frames (cold caches: its animate row is the rendering cost), then the job of the
  requested length runs as a repeat-avatar job (same face and clip: motion and rendered frames
  come from the caches), which is what a returning user's job costs.
- ``bench_render``: a cold LivePortrait render at one batch size (time per rendered frame and
  the process's peak memory: run each batch size in its own process).
- ``bench_networks`` / ``bench_lipsync``: one stage's networks, part by part.
- ``bench_voice``: JoyVASA's audio features and motion sampling per output second, at several
  step counts, with full-size random weights, and how far fewer steps move the motion.
"""

from __future__ import annotations

import math
import tempfile
import time
import wave
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.chain.bank import ModelBank
from pipeline.chain.runner import Runner, fit_photo
from pipeline.example import AUDIO, FACE, example_dir
from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.registry import engine_entry
from pipeline.liveportrait.loader import build_stage
from pipeline.liveportrait.render_batch import render_batch_size
from pipeline.media.audio import load_audio
from pipeline.media.image import load_image
from pipeline.media.video import VideoWriter
from pipeline.memory import MemoryFigures
from pipeline.rss import peak_rss_mb
from pipeline.settings import AUTO_BATCH, BatchSize, PipelineSettings
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
    """A 1 s warm-up job (cold: renders), then ``seconds`` as a repeat-avatar job; both records.
    The caches are a fresh folder's, so the warm-up is a first job whatever ran before."""
    with tempfile.TemporaryDirectory(prefix="facedrop-bench-") as tmp:
        work = Path(tmp)
        runner = Runner(replace(settings, cache_dir=work / "cache"))
        face = work / photo.name  # the job folder is ``work``: a clip file there is found by name
        face.write_bytes(photo.read_bytes())
        audio = {"cold": looped_speech(speech, 1.0, work / "warmup.wav"),
                 "repeat": looped_speech(speech, seconds, work / "speech.wav")}
        clip: str | Path | None = driving
        if not clip and not settings.default_driver:
            clip = sway_clip(fit_photo(load_image(photo), 512), work / "sway.mp4").name
        records: list[TimingRecord] = []
        for run in ("cold", "repeat"):
            # motion: clip, so the chain bench stays a clip's when voice weights are present
            job = JobSpec(name=f"bench-{run}", face=face, audio=audio[run], driving=clip,
                          output_name=f"{run}.mp4", fps=fps, lipsync=lipsync, enhance=enhance,
                          motion="clip")
            records.append(runner.run(job, work / f"{run}.mp4", no_progress, CancelToken()))
    return {"seconds": seconds, "cold": records[0].to_json(), "repeat": records[1].to_json(),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def bench_generated(settings: PipelineSettings, photo: Path, speech: Path, seconds: float,
                    motion: str, *, fps: float = 25.0, steps: int | None = None,
                    lipsync: bool = True, enhance: bool = False) -> dict[str, object]:
    """One whole job of ``seconds`` with generated motion (``voice`` or ``still``) from empty
    caches, in this process: its time and the process's peak memory (run each length in its
    own process: a peak never goes down). Every output frame is a distinct render streamed
    through the render cache, so the peak should not grow with the length."""
    with tempfile.TemporaryDirectory(prefix="facedrop-bench-") as tmp:
        work = Path(tmp)
        settings = replace(settings, cache_dir=work / "cache")
        runner = Runner(settings)
        face = work / photo.name
        face.write_bytes(photo.read_bytes())
        audio = looped_speech(speech, seconds, work / "speech.wav")
        job = JobSpec(name="bench-job", face=face, audio=audio, driving=None,
                      output_name="job.mp4", fps=fps, lipsync=lipsync, enhance=enhance,
                      quality=False, motion=motion, seed=0,
                      motion_steps=steps if motion == "voice" else None)
        start = time.perf_counter()
        record = runner.run(job, work / "job.mp4", no_progress, CancelToken())
        spent = time.perf_counter() - start
    rendered = next((s.frames for s in record.stages if s.name == "animate"), 0)
    return {"motion": motion, "seconds": seconds, "fps": fps, "frames": record.frames,
            "rendered": rendered, "steps": steps if motion == "voice" else None,
            "job_seconds": round(spent, 2), "device": str(runner.bank.device),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


@dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage's figures under a title (ms per call or per frame, and peak memory)."""

    title: str
    figures: dict[str, float]


def bench_networks(settings: PipelineSettings) -> StageFigures:
    """Median ms per batch-1 call of each LivePortrait network on the settings' device."""
    from pipeline.liveportrait.bench import benchmark_networks
    from pipeline.liveportrait.loader import load_liveportrait

    bank = ModelBank(settings)
    dtype = bank.dtype(bank.device.type in ("cuda", "mps"))
    nets = load_liveportrait(settings.weights_dir, bank.device, dtype)
    figures = benchmark_networks(nets, bank.device, dtype)
    figures["peak memory (MiB)"] = peak_rss_mb()
    return StageFigures(f"LivePortrait on {bank.device} ({dtype}), ms per batch-1 call", figures)


def bench_lipsync(settings: PipelineSettings, engine: str | None = None) -> StageFigures:
    """The lip-sync stage on crops of the example photo and its speech, ms per output frame.

    ``engine`` (default: the configured one): a Wav2Lip model, or ``musetalk``, whose parts are
    shown next to Wav2Lip's (the ``wav2lip`` model, when its weights are there).
    """
    name = engine or settings.lipsync_model
    if name != "musetalk":
        figures = _wav2lip_figures(replace(settings, lipsync_model=name), "")
        figures["peak memory (MiB)"] = peak_rss_mb()
        bank = ModelBank(settings)
        half = engine_entry(name).fp16_checked
        return StageFigures(f"Lip sync on {bank.device} ({bank.dtype(half)}), ms per output "
                            "frame", figures)
    figures, title = _musetalk_figures(settings)
    w2l = replace(settings, lipsync_model="wav2lip")
    from pipeline.lipsync.wav2lip.load import wav2lip_path

    if wav2lip_path(w2l.weights_dir, "wav2lip").is_file():
        figures.update(_wav2lip_figures(w2l, "Wav2Lip: "))
    else:
        title += " (no Wav2Lip weights: nothing to compare with)"
    figures["peak memory (MiB)"] = peak_rss_mb()
    return StageFigures(title, figures)


def bench_voice(settings: PipelineSettings, steps: list[int],
                seconds: float | None = None) -> StageFigures:
    """Voice motion's cost per output second (``facedrop bench --motion voice``): JoyVASA's audio
    features and sampling on the example speech (``pipeline.voice.bench``, full-size random
    weights), and the render, W + G once per output frame (every voice frame is a distinct
    render), with the LivePortrait weights of the settings when they are there."""
    from pipeline.voice.bench import DEFAULT_SECONDS, FPS, benchmark_voice

    bank = ModelBank(settings)
    dtype = bank.dtype(False)
    r = benchmark_voice(load_audio(example_dir() / AUDIO).samples, bank.device, dtype, steps,
                        seconds=seconds or DEFAULT_SECONDS)
    figures = {"audio features (HuBERT)": r.audio_ms_per_second}
    for count, ms in sorted(r.motion_ms_per_second.items(), reverse=True):
        figures[f"motion, {count} steps"] = ms
    render_ms = _render_frame_ms(settings, bank.device, dtype)
    note = ""
    if render_ms is None:
        note = "; no LivePortrait weights: rendering not measured"
    else:
        figures[f"rendering (W+G per output frame, {FPS:g} fps)"] = render_ms * FPS
        full = max(r.motion_ms_per_second)
        figures[f"total at {full} steps"] = (r.audio_ms_per_second
                                             + r.motion_ms_per_second[full] + render_ms * FPS)
    full = max(r.motion_ms_per_second)
    for count, dev in sorted(r.deviation.items(), reverse=True):
        figures[f"{count} vs {full} steps: RMS change, % of range"] = 100 * dev["rms"]
        figures[f"{count} vs {full} steps: max change, % of range"] = 100 * dev["max"]
    figures["peak memory (MiB)"] = round(peak_rss_mb(), 1)
    if r.device_peak_mb:
        figures["device peak (MiB)"] = r.device_peak_mb
    return StageFigures(f"Voice motion on {r.device} ({r.dtype}; JoyVASA width {r.feature_dim}, "
                        f"random weights, {r.frames} frames{note}), ms per output second",
                        figures)


def _render_frame_ms(settings: PipelineSettings, device: torch.device,
                     dtype: torch.dtype) -> float | None:
    """ms of one W + G call per rendered frame (batch 1, the median of a few), or None without
    the LivePortrait weights (the voice figures stand on their own)."""
    from pipeline.errors import FacedropError
    from pipeline.liveportrait.bench import benchmark_networks
    from pipeline.liveportrait.loader import load_liveportrait

    try:
        nets = load_liveportrait(settings.weights_dir, device, dtype)
    except FacedropError:
        return None
    return benchmark_networks(nets, device, dtype)["render_frame"]


def _wav2lip_figures(settings: PipelineSettings, prefix: str) -> dict[str, float]:
    from pipeline.lipsync.wav2lip.bench import benchmark_lipsync
    from pipeline.lipsync.wav2lip.load import load_wav2lip, wav2lip_path

    bank = ModelBank(settings)
    dtype = bank.dtype(engine_entry(settings.lipsync_model).fp16_checked)
    net = load_wav2lip(wav2lip_path(settings.weights_dir, settings.lipsync_model), bank.device,
                       dtype)
    result = benchmark_lipsync(net, FaceLandmarker(settings.weights_dir),
                               load_image(example_dir() / FACE),
                               load_audio(example_dir() / AUDIO).samples, bank.device, dtype,
                               batch_size=settings.chunk_size)
    parts = {"landmarks (per distinct crop)": result.landmarks_ms, "mel": result.mel_ms,
             "generator": result.generator_ms, "blend": result.blend_ms,
             "total": result.total_ms}
    return {prefix + k: v for k, v in parts.items()}


def _musetalk_figures(settings: PipelineSettings) -> tuple[dict[str, float], str]:
    from pipeline.lipsync.engine import EngineContext
    from pipeline.lipsync.musetalk.musetalk_bench import benchmark_musetalk
    from pipeline.lipsync.musetalk.musetalk_engine import load_musetalk_engine
    bank = ModelBank(settings)
    dtype = bank.dtype(engine_entry("musetalk").fp16_checked)
    landmarker = FaceLandmarker(settings.weights_dir)
    engine = load_musetalk_engine(EngineContext(
        settings.weights_dir, settings.cache_dir, bank.device, dtype, settings.chunk_size,
        landmarker, settings.render_cache_mb), "musetalk")
    r = benchmark_musetalk(engine, landmarker, load_image(example_dir() / FACE),
                           load_audio(example_dir() / AUDIO).samples,
                           batch_size=settings.chunk_size)
    figures = {"MuseTalk: prepare (per distinct crop)": r.prepare_ms,
               "MuseTalk: audio features (whisper)": r.audio_ms, "MuseTalk: UNet": r.unet_ms,
               "MuseTalk: VAE decoder": r.vae_decoder_ms, "MuseTalk: blend": r.blend_ms,
               "MuseTalk: total": r.total_ms}
    return figures, f"Lip sync on {bank.device} ({r.dtype}), ms per output frame"


@dataclass(frozen=True, slots=True)
class RenderBench:
    """A cold render of ``frames`` distinct frames at one batch setting, in a fresh process.

    ``batch``: the setting asked for ("auto" or a number); ``used``: the frames per W + G call
    it gave; ``auto_pick``: what ``auto`` picks here with the models loaded; ``ms_per_frame``:
    the animate stage's time without motion extraction, per rendered frame; ``peak_rss_mb``:
    the process's peak (models, motion extraction and render).
    """

    batch: str
    used: int
    auto_pick: int
    frames: int
    ms_per_frame: float
    peak_rss_mb: float
    available_mb: float | None
    total_mb: float | None
    memory_source: str
    device: str
    dtype: str

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def bench_render(settings: PipelineSettings, batch: BatchSize, frames: int = 8,
                 fps: float = 25.0) -> RenderBench:
    """Render ``frames`` frames of the example photo swaying, from empty caches, at ``batch``."""
    with tempfile.TemporaryDirectory(prefix="facedrop-bench-") as tmp:
        work = Path(tmp)
        settings = replace(settings, batch_size=batch, cache_dir=work / "cache")
        photo = fit_photo(load_image(example_dir() / FACE), settings.max_size)
        clip = sway_clip(fit_photo(photo, 512), work / "sway.mp4", frames / fps, int(fps))
        landmarker = FaceLandmarker(settings.weights_dir)
        landmarks = landmarker.landmarks(photo, landmarker.detect(photo))
        stage = build_stage(settings, landmarker)
        memory = stage.memory()  # what a job's render would see now: models loaded
        auto = render_batch_size(AUTO_BATCH, memory, stage.nets.device.type,
                                 stage.nets.dtype.itemsize)
        start = time.perf_counter()
        result = stage.run(photo, landmarks, clip, frames / fps, fps)
        seconds = time.perf_counter() - start - result.timings.get("driving_motion", 0.0)
    return RenderBench(
        batch=str(batch), used=result.render_batch, auto_pick=auto, frames=result.rendered,
        ms_per_frame=1000.0 * seconds / max(1, result.rendered),
        peak_rss_mb=round(peak_rss_mb(), 1), available_mb=_mib(memory, "available"),
        total_mb=_mib(memory, "total"), memory_source=memory.source if memory else "unreadable",
        device=str(stage.nets.device), dtype=str(stage.nets.dtype).removeprefix("torch."),
    )


def _mib(memory: MemoryFigures | None, name: str) -> float | None:
    return None if memory is None else round(getattr(memory, name) / 2**20, 1)
