"""The chain: one job folder's photo and voice in, one talking-head video out.

prepare (decode, detect once, choose the motion source) -> motion (a clip's, cached; or voice /
still motion generated for this job) -> animate (each distinct driving frame rendered
once, cached) -> landmarks (once per distinct crop) -> lip sync -> enhance -> paste back -> encode
with the original audio. ``Runner`` implements the daemon's ``Pipeline`` seam; the models it
loads stay resident for the next job. Voice motion comes from an injected ``VoiceMotion``
(``voice_factory``; ``pipeline.motion.wiring.built_in_voice`` by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.chain.bank import ModelBank
from pipeline.chain.compose import Composer, DistinctCrops
from pipeline.chain.stageclock import StageClock
from pipeline.enhance.load import load_gfpgan
from pipeline.enhance.stage import Enhancer
from pipeline.face.landmarks import FaceLandmarker
from pipeline.face.paste import PasteBack
from pipeline.lipsync.engine import EngineContext, FrameFeatures, LipSyncEngine, PreparedCrop
from pipeline.lipsync.registry import engine_entry, load_engine
from pipeline.lipsync.wav2lip.stage import BaseFace
from pipeline.liveportrait.animate import (
    SOURCE_CROP_SCALE,
    AnimateOptions,
    AnimationResult,
    LivePortraitStage,
)
from pipeline.liveportrait.drivers import DriverLibrary
from pipeline.liveportrait.generated import MotionMaker
from pipeline.liveportrait.loader import build_stage
from pipeline.media.audio import Audio, load_audio
from pipeline.media.frame_count import output_frame_count
from pipeline.media.image import load_image
from pipeline.media.video import VideoWriter, exact_fps
from pipeline.models.syncnet import SyncNet
from pipeline.motion.amount import MotionAmount
from pipeline.motion.kinds import AUTO, MotionSource
from pipeline.motion.make import VOICE_CROP_SCALE, MotionJob, motion_maker
from pipeline.motion.source import MotionChoice, resolve_motion, voice_missing
from pipeline.motion.voice import VoiceMotion
from pipeline.motion.wiring import built_in_voice
from pipeline.prerequisites import JobNeeds, Missing
from pipeline.prerequisites import missing as missing_prerequisites
from pipeline.quality.jobscore import FlaggingTracker, JobScorer, switched_off
from pipeline.quality.model import load_syncnet, syncnet_path
from pipeline.settings import PipelineSettings
from pipeline.spec import CancelToken, JobSpec, MotionUsed, ProgressFn, TimingRecord

GFPGAN_FILE = Path("gfpgan") / "GFPGANv1.4.pth"
VoiceFactory = Callable[[PipelineSettings, torch.device], VoiceMotion | None]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job's decoded inputs: the photo at output size, its landmarks, the audio, the motion
    source (and the clip, when a clip drives the job)."""

    photo: np.ndarray  # (H, W, 3) uint8 RGB, even H and W, long side <= max_size
    landmarks: np.ndarray  # (468, 2) in photo pixels
    audio: Audio
    n_frames: int
    driving: Path | None  # the clip's file; None for generated motion (voice, still)
    motion: MotionChoice


def output_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The photo's aspect ratio, long side capped at ``max_size``, both sides even."""
    scale = min(1.0, max_size / max(width, height))
    w, h = round(width * scale), round(height * scale)
    return max(2, w - w % 2), max(2, h - h % 2)


def fit_photo(photo: np.ndarray, max_size: int) -> np.ndarray:
    """Resize (INTER_AREA) or trim one odd row/column so the photo has the output size."""
    h, w = photo.shape[:2]
    ow, oh = output_size(w, h, max_size)
    if (ow, oh) == (w, h):
        return photo
    if ow >= w - 1 and oh >= h - 1:  # only odd sides: trim, no resampling
        return np.ascontiguousarray(photo[:oh, :ow])
    return cv2.resize(photo, (ow, oh), interpolation=cv2.INTER_AREA)


class Runner:
    """The real pipeline behind ``facedrop run`` and the daemon."""

    def __init__(self, settings: PipelineSettings, bank: ModelBank | None = None,
                 voice_factory: VoiceFactory = built_in_voice) -> None:
        self.settings = settings
        self.bank = bank or ModelBank(settings)
        self.drivers = DriverLibrary(settings.drivers_dir)
        # built now (cheap: the provider loads its networks on first use) so that choosing a
        # job's source can ask whether its weights are there
        self.voice = voice_factory(settings, self.bank.device)

    def missing_prerequisites(self, needs: JobNeeds) -> list[Missing]:
        """Every weight file and driving clip a job like ``needs`` lacks (nothing is loaded)."""
        source = self.asked_source(needs.motion, needs.driving)
        gap = None
        if source is MotionSource.VOICE:
            absent = voice_missing(self.voice)
            if absent is not None:
                gap = Missing(f"voice motion weights: {absent}", "facedrop weights fetch voice")
        # under auto a job never lacks motion: without voice weights or a default clip it is
        # still motion (pipeline.motion.source)
        return missing_prerequisites(self.settings, needs, clip_needed=source is MotionSource.CLIP,
                                     voice_gap=gap)

    def asked_source(self, motion: str | None, driving: str | Path | None) -> MotionSource | None:
        """The source a job asks for, or the config sets; None when ``auto`` decides."""
        if motion:
            return MotionSource(motion)
        if driving is not None:
            return MotionSource.CLIP
        configured = self.settings.motion_source
        return None if configured == AUTO else MotionSource(configured)

    # -- models, loaded once ------------------------------------------------------------------
    def landmarker(self) -> FaceLandmarker:
        return self.bank.get("landmarks", lambda: FaceLandmarker(self.settings.weights_dir))

    def animator(self) -> LivePortraitStage:
        return self.bank.get("liveportrait",
                             lambda: build_stage(self.settings, self.landmarker()))

    def engine_name(self, job: JobSpec) -> str:
        """The lip-sync engine a job uses: the one its job.yaml names, else the configured one."""
        return job.lipsync_engine or self.settings.lipsync_model

    @staticmethod
    def engine_key(name: str) -> str:
        """The model-bank key of the lip-sync engine ``name``."""
        return f"lipsync:{name}"

    def syncer(self, name: str | None = None) -> LipSyncEngine[Any]:
        """The lip-sync engine ``name`` (default: the configured one), loaded once."""
        name = name or self.settings.lipsync_model
        entry = engine_entry(name)

        def load() -> LipSyncEngine[Any]:
            s = self.settings
            ctx = EngineContext(s.weights_dir, s.cache_dir, self.bank.device,
                                self.bank.dtype(entry.fp16_checked), s.chunk_size,
                                self.landmarker(), s.render_cache_mb)
            return load_engine(ctx, name)

        return self.bank.get(self.engine_key(name), load)

    def enhancer(self) -> Enhancer:
        def load() -> Enhancer:
            dtype = self.bank.dtype(True)  # fp16 checked: 70 dB PSNR (test_half_precision)
            net = load_gfpgan(self.settings.weights_dir / GFPGAN_FILE, self.bank.device, dtype)
            # one 512 face holds ~0.5 GB of activations in fp32 and batching gains nothing off
            # the GPU: batch only on CUDA
            batch = self.settings.chunk_size if self.bank.device.type == "cuda" else 1
            return Enhancer(net, self.bank.device, dtype, self.settings.enhance_strength, batch)

        return self.bank.get("enhance", load)

    # -- one job -------------------------------------------------------------------------------
    def syncnet(self) -> SyncNet:
        """SyncNet for scoring (optional weights: a missing file leaves lip sync unscored)."""
        return self.bank.get("syncnet", lambda: load_syncnet(
            syncnet_path(self.settings.weights_dir), self.bank.device))

    def run(self, job: JobSpec, output: Path, progress: ProgressFn,
            cancel: CancelToken) -> TimingRecord:
        """Make ``output`` (an MP4) from ``job``; return its timing record (and quality)."""
        start = time.perf_counter()
        job = replace(job, fps=float(exact_fps(job.fps)))  # "29.97" means 30000/1001
        clock = StageClock()
        with clock.timed("prepare") as entry:
            prepared = self.prepare(job)
            entry.frames = prepared.n_frames
        cancel.raise_if_cancelled()
        anim = self.animate(job, prepared, clock, progress, cancel)
        scorer = (JobScorer(dict(self.settings.quality_limits), self.syncnet,
                            landmarker=self.landmarker) if job.quality else None)
        self.compose(job, prepared, anim, output, clock, progress, cancel, scorer)
        quality = switched_off()
        if scorer is not None:
            with clock.timed("quality", anim.n_frames) as entry:
                quality = scorer.finish()
                entry.note = quality.headline  # the whole verdict follows the table
            entry.seconds = scorer.seconds  # the sample kept while composing included
        else:
            clock.skip("quality", "quality: false")
        record = TimingRecord(
            job=job.name, device=str(self.bank.device),
            dtype=str(self.bank.dtype(True)).removeprefix("torch."),
            frames=prepared.n_frames, fps=float(job.fps), audio_seconds=prepared.audio.duration,
            model_load_seconds=self.bank.take_load_seconds(), stages=clock.stages(),
            quality=quality, motion=self.motion_used(job, prepared.motion),
        )
        record.total_seconds = time.perf_counter() - start
        return record

    def prepare(self, job: JobSpec) -> Prepared:
        """Decode the photo and audio, find the face once, resolve the driving clip."""
        photo = fit_photo(load_image(job.face, self.settings.max_image_pixels),
                          self.settings.max_size)
        audio = load_audio(job.audio, self.settings.max_audio_seconds)
        landmarker = self.landmarker()
        landmarks = landmarker.landmarks(photo, landmarker.detect(photo))
        choice = self.motion_choice(job)
        driving = choice.clip.path if choice.clip is not None else None
        return Prepared(photo, landmarks, audio, output_frame_count(audio.duration, job.fps),
                        driving, choice)

    # -- motion --------------------------------------------------------------------------------
    def motion_choice(self, job: JobSpec) -> MotionChoice:
        """The job's motion source and why (``pipeline.motion.source``: the one rule)."""
        s = self.settings
        configured = None if s.motion_source == AUTO else MotionSource(s.motion_source)
        return resolve_motion(MotionSource(job.motion) if job.motion else None, job.driving,
                              configured=configured, voice=self.voice, library=self.drivers,
                              default_clip=s.default_driver, job_dir=job.face.parent)

    def motion_job(self, job: JobSpec, n_frames: int) -> MotionJob:
        """What generated motion depends on: job.yaml's values, else the config's."""
        s = self.settings
        return MotionJob(
            n_frames=n_frames, fps=float(job.fps),
            seed=job.seed if job.seed is not None else s.motion_seed,
            steps=job.motion_steps if job.motion_steps is not None else s.motion_steps,
            amount=MotionAmount(
                head=job.head_motion if job.head_motion is not None else s.head_motion,
                face=job.face_motion if job.face_motion is not None else s.face_motion),
        )

    def motion_used(self, job: JobSpec, choice: MotionChoice) -> MotionUsed:
        """timing.json's ``motion``: the source, why, and the seed of generated motion."""
        seed = (None if choice.source is MotionSource.CLIP
                else self.motion_job(job, 1).seed)
        clip = choice.clip.name if choice.clip is not None else None
        return MotionUsed(choice.source.value, choice.reason, seed, clip)

    def driving_input(self, job: JobSpec, prepared: Prepared,
                      progress: ProgressFn) -> tuple[Path | MotionMaker, AnimateOptions]:
        """What the stage animates with (the clip, or the maker of this job's motion) and how."""
        if prepared.driving is not None:
            return prepared.driving, AnimateOptions(hold_lips=job.lipsync)
        source = prepared.motion.source
        maker = motion_maker(source, self.motion_job(job, prepared.n_frames),
                             prepared.audio.samples, self.voice,
                             progress=lambda f: progress("motion", f))
        crop = VOICE_CROP_SCALE if source is MotionSource.VOICE else SOURCE_CROP_SCALE
        return maker, AnimateOptions(hold_lips=job.lipsync, crop_scale=crop)

    def animate(self, job: JobSpec, prepared: Prepared, clock: StageClock, progress: ProgressFn,
                cancel: CancelToken) -> AnimationResult:
        """The LivePortrait stage, with its motion and render cache results in the log."""
        stage = self.animator()
        driving, options = self.driving_input(job, prepared, progress)
        t0 = time.perf_counter()
        anim = stage.run(prepared.photo, prepared.landmarks, driving,
                         prepared.audio.duration, float(job.fps), options, progress, cancel)
        seconds = time.perf_counter() - t0
        motion_s = anim.timings.get("driving_motion", 0.0)
        motion = clock.stage("motion")
        motion.seconds, motion.cache = motion_s, anim.motion_cache
        if prepared.driving is not None:
            motion.note = prepared.driving.name
        else:
            motion.frames = anim.n_frames
            motion.note = f"{prepared.motion.source.value}, seed {self.motion_job(job, 1).seed}"
        render = clock.stage("animate")
        render.seconds, render.frames = seconds - motion_s, anim.rendered
        render.cache = anim.render_cache
        render.note = (f"{anim.rendered} rendered, {anim.reused} reused"
                       f" of {anim.n_distinct} distinct")
        if anim.rendered:  # what batch_size (auto: the free memory) gave
            render.note += f", {anim.render_batch} per W+G call"
        return anim

    def bases(self, anim: AnimationResult, prepared: Prepared, engine: LipSyncEngine[Any] | None,
              tracker: FlaggingTracker) -> list[PreparedCrop]:
        """Landmarks and the engine's per-crop preparation (box, mask, latents) once per
        distinct crop, tracked from the photo's."""
        first = anim.affine.apply(prepared.landmarks).astype(np.float32)
        crops = DistinctCrops(anim)
        if engine is not None:
            # this job's tracker (it counts its lost frames); the resident engine stays as it is
            return engine.prepare(crops, first, landmarker=tracker)
        prev = first
        out: list[PreparedCrop] = []
        for crop in crops:  # enhance only: landmarks without the lip-sync box and mask
            prev = tracker.track(crop, prev)
            out.append(BaseFace(prev, (0, 0, 0, 0), np.zeros((0, 0), np.float32)))
        return out

    def compose(self, job: JobSpec, prepared: Prepared, anim: AnimationResult, output: Path,
                clock: StageClock, progress: ProgressFn, cancel: CancelToken,
                scorer: JobScorer | None = None) -> None:
        """Lip sync, enhance, paste back and encode every output frame (``scorer`` keeps its
        sample of them)."""
        engine = self.syncer(self.engine_name(job)) if job.lipsync else None
        bases: list[PreparedCrop] = []
        if job.lipsync or job.enhance or scorer is not None:
            tracker = FlaggingTracker(self.landmarker())
            with clock.timed("landmarks", anim.n_distinct) as entry:
                bases = self.bases(anim, prepared, engine, tracker)
            if tracker.lost:
                entry.note = (f"face not found in {tracker.lost} of {anim.n_distinct} rendered"
                              " crops: kept the previous landmarks")
            if scorer is not None:
                scorer.begin(order=anim.order, crop_landmarks=[b.landmarks for b in bases],
                             tracked=tracker.tracked, crop_to_frame=anim.affine.inverse(),
                             fps=float(job.fps), audio=prepared.audio.samples)
        features: FrameFeatures | None = None
        if engine is not None:
            with clock.timed(engine.features_stage, anim.n_frames):
                features = engine.audio_features(prepared.audio.samples, job.fps, anim.n_frames)
        else:
            clock.skip("lipsync", "lipsync: false in job.yaml")
        if not job.enhance:
            clock.skip("enhance", "enhance: false in job.yaml")
        h, w = prepared.photo.shape[:2]
        composer = Composer(
            syncer=engine,
            enhancer=self.enhancer() if job.enhance else None,
            paste=PasteBack(anim.affine, (512, 512), (w, h)), clock=clock,
            batch_size=self.settings.chunk_size, observer=scorer,
        )
        with VideoWriter(output, w, h, job.fps, audio_path=job.audio) as writer:
            composer.run(prepared.photo, anim, bases, features, writer, progress, cancel)
            if engine is not None:
                clock.stage("lipsync").note = engine.name  # which engine made the mouth
            with clock.timed("encode"):
                writer.close()  # flush the encoder thread and mux the audio
