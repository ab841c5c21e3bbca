"""``JoyVasaMotion``: voice -> LivePortrait driving motion, the ``VoiceMotion`` of the motion seam
(see the voice-motion interface agreed with the motion source, ``pipeline/motion/voice.py``).

JoyVASA (jdh-algo/JoyVASA, ported at commit 74290f61accfbabef19b195a54b8122141f0e336) makes
motion at its checkpoint's frame rate (25 fps): HuBERT features, the windowed DDPM
(``pipeline.voice.sampler``), de-normalisation with ``motion_template.pkl`` and the official EMA
smoothing of pose (``pipeline.voice.denorm``). At 25 fps the frames are the official ones, cut
to ``n_frames``; at another rate they are linearly resampled in time. Audio too short for
``n_frames`` is extended with silence, so the motion always has exactly ``n_frames`` frames.

Models load on the first ``generate`` (or ``missing``) and stay resident for later jobs. With a
``VoiceMotionStore`` the sampled motion is kept on disk, keyed by the audio, frames, seed, steps
and the loaded weights' identity (``identity``), so a rerun of a job samples nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import FacedropError, InputError
from pipeline.liveportrait.template import DrivingMotion
from pipeline.voice.denorm import denormalise, resample, smooth, to_driving_motion
from pipeline.voice.load import JoyVasaModels, VoiceFiles, load_models
from pipeline.voice.motion_store import VoiceMotionKey, VoiceMotionStore, audio_sha256
from pipeline.voice.sampler import (
    PAD_AFTER,
    PAD_BEFORE,
    SAMPLE_RATE,
    SampleOptions,
    official_frame_count,
    sample_motion,
)

MAX_STEPS = 10_000


class JoyVasaMotion:
    """JoyVASA motion from a voice; one instance keeps its models for every later job."""

    def __init__(self, weights_dir: Path, device: torch.device,
                 dtype: torch.dtype = torch.float32, *, smooth_pose: bool = True,
                 store: VoiceMotionStore | None = None) -> None:
        self.files = VoiceFiles.under(weights_dir)
        self.store = store
        self.device = device
        self.dtype = dtype
        self.smooth_pose = smooth_pose  # the official is_smooth_motion=True
        self._models: JoyVasaModels | None = None
        self._identity = ""
        self._lock = threading.Lock()

    def missing(self) -> str | None:
        """None when the weights load; else one line naming the fix."""
        try:
            self.models()
        except FacedropError as exc:
            fix = f" ({exc.fix})" if exc.fix else ""
            return f"{exc.problem}{fix}"
        return None

    def models(self) -> JoyVasaModels:
        with self._lock:
            if self._models is None:
                identity = self._files_identity()  # before reading: a file replaced later
                self._models = load_models(self.files, self.device, self.dtype)
                self._identity = identity  # keeps the identity of what was loaded
            return self._models

    def identity(self) -> str:
        """What the loaded motion depends on besides the job: every weight file's name, size
        and modification time as read at load, the device type, the dtype and the smoothing."""
        self.models()
        return (f"{self._identity}|{self.device.type}|{self.dtype}"
                f"|smooth={int(self.smooth_pose)}")

    def _files_identity(self) -> str:
        parts = []
        for path in (self.files.generator, self.files.template, self.files.hubert_config,
                     self.files.hubert_weights):
            try:
                st = path.stat()
            except OSError:
                parts.append(f"{path.name}:absent")  # the loader names the missing file
                continue
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
        return ",".join(parts)

    def generate(self, audio_16k: np.ndarray, fps: float, n_frames: int, *, seed: int,
                 steps: int | None, progress: Callable[[float], None] | None = None
                 ) -> DrivingMotion:
        """Motion for exactly ``n_frames`` frames at ``fps`` from mono float32 16 kHz audio."""
        audio = _check_audio(audio_16k)
        if not (math.isfinite(fps) and fps > 0) or n_frames < 1:
            raise InputError(f"cannot make {n_frames} frames of motion at {fps} fps",
                             fix="give a positive frame count and frame rate")
        if steps is not None and not 1 <= steps <= MAX_STEPS:
            raise InputError(f"motion_steps {steps} is out of range",
                             fix=f"use 1..{MAX_STEPS} or leave it out for the official 500")
        models = self.models()
        key = None
        if self.store is not None:
            key = VoiceMotionKey(audio_sha256(audio), float(fps), n_frames, seed, steps,
                                 self.identity())
            cached = self.store.get(key)
            if cached is not None:
                if progress is not None:
                    progress(1.0)
                return cached
        motion = self._sample(models, audio, fps, n_frames, seed, steps, progress)
        if self.store is not None and key is not None:
            self.store.put(key, motion)
        return motion

    def _sample(self, models: JoyVasaModels, audio: np.ndarray, fps: float, n_frames: int,
                seed: int, steps: int | None,
                progress: Callable[[float], None] | None) -> DrivingMotion:
        src_fps = models.args.fps
        need = math.ceil((n_frames - 1) * src_fps / fps - 1e-9) + 1  # source frames to cover
        audio = _extend(audio, need, src_fps, models.args.dit.n_motions)
        with torch.inference_mode():
            coef = sample_motion(models.dit, models.hubert, torch.from_numpy(audio), src_fps,
                                 models.args.pad_mode, SampleOptions(seed=seed, steps=steps),
                                 max_frames=need, progress=progress)
        frames = denormalise(coef.float(), models.stats)
        if self.smooth_pose:
            frames = smooth(frames)
        return to_driving_motion(resample(frames, src_fps, fps, n_frames), fps)


def _check_audio(audio: np.ndarray) -> np.ndarray:
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise InputError("the voice must be mono 16 kHz samples with finite values",
                         fix="give the job a readable audio file")
    return np.ascontiguousarray(arr)


def _extend(audio: np.ndarray, need: int, fps: float, n_motions: int) -> np.ndarray:
    """The audio, with silence appended only when the official loop would give fewer than
    ``need`` frames."""
    if official_frame_count(len(audio), fps, n_motions) >= need:
        return audio
    unit = SAMPLE_RATE / fps
    n = max(len(audio), math.floor(need * unit) - PAD_BEFORE - PAD_AFTER)
    while official_frame_count(n, fps, n_motions) < need:
        n += max(1, math.ceil(unit))
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=np.float32)])
