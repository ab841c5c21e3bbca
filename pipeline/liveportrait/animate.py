"""The LivePortrait stage: the photo animated by a driving clip, each distinct frame rendered once.

1. Source: the official 512 crop of the photo (``liveportrait_crop``), its 256 network input.
2. Driving motion: from the keypoint cache, or extracted once (``driving.clip_motion``).
3. Retiming: output frame -> driving frame at the exact rates (``retime``); the distinct driving
   frames used are the only ones rendered.
4. Render cache: the crops of (source crop, clip, options, models) are kept on disk; only frames
   not yet there are rendered (none on a repeat job), in chunks of the render batch
   (``render_batch``: the set ``batch_size``, or under ``auto`` one chosen from free memory).
5. Per chunk: relative keypoints (``motion``), stitching or eye retargeting, W + G -> 512 crops,
   written straight to the cache's memmap (never all in RAM).

Generated motion (``voice``, ``still``: a ``MotionMaker``, see ``generated``) skips 2 and 3: it
has exactly the job's frames at the job's fps, every output frame is one distinct render, and
the render cache is keyed by the motion's content hash (a rerun renders nothing). The crops go
to the cache's memmap chunk by chunk and are read back one frame at a time by the compositor,
so memory does not grow with the video's length.

The result gives the crop ``Affine`` (image -> crop), the output -> distinct-crop sequence and a
reader for each distinct crop, so the next stages work in crop space and paste back once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.face.affine import Affine, warp
from pipeline.face.geometry import liveportrait_crop, network_input_256
from pipeline.face.landmarker import Landmarker
from pipeline.face.ratios import eye_ratio
from pipeline.liveportrait.driving import ClipMotion, clip_motion
from pipeline.liveportrait.generated import KeypointRule, MotionMaker
from pipeline.liveportrait.motion import (
    DrivingOption,
    SourceKeypoints,
    expression_multiplier,
    posed_keypoints,
    relative_keypoints,
)
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.liveportrait.nets import NetRunner
from pipeline.liveportrait.render_batch import render_batch_size
from pipeline.liveportrait.render_cache import FRAME_BYTES, RenderCache, RenderEntry, render_key
from pipeline.liveportrait.retime import RetimePlan, retime
from pipeline.media.frame_count import output_frame_count
from pipeline.memory import MemoryFigures, device_memory
from pipeline.settings import AUTO_BATCH, PipelineSettings
from pipeline.spec import CacheState, CancelToken, ProgressFn, no_progress

STAGE = "animate"
SOURCE_CROP_SCALE = 2.3  # the official source crop (CropConfig.scale)
MemoryProbe = Callable[[], MemoryFigures | None]


@dataclass(frozen=True, slots=True)
class AnimateOptions:
    """Animation choices; all of them are part of the render-cache key.

    ``hold_lips``: keep the driving clip's mouth motion out (the lip keypoints keep the source's
    expression) so the mouth stays neutral for the lip-sync model; on when lip sync follows.
    ``eye_retargeting``: the official retargeting path, which (as in the official code, issue
    #168) replaces the driving pose and expression by ``x_s + R_eyes(...)``.
    """

    driving_option: DrivingOption = DrivingOption.EXPRESSION_FRIENDLY
    stitching: bool = True
    eye_retargeting: bool = False
    hold_lips: bool = True
    driving_multiplier: float = 1.0
    crop_scale: float = SOURCE_CROP_SCALE  # the source crop's scale (voice: see voice_crop)

    def tag(self) -> str:
        tag = (f"{self.driving_option.value}|stitch={int(self.stitching)}"
               f"|eyes={int(self.eye_retargeting)}|holdlips={int(self.hold_lips)}"
               f"|mult={self.driving_multiplier:g}")
        # only a changed crop is tagged, so the keys of existing clip renders stay valid
        return tag if self.crop_scale == SOURCE_CROP_SCALE else f"{tag}|crop={self.crop_scale:g}"


@dataclass(frozen=True, slots=True)
class SourceFace:
    """The photo as the networks see it: the crop transform, the 256 input, its eye ratios."""

    affine: Affine  # image -> 512 crop
    input256: np.ndarray  # (256,256,3) uint8 RGB
    eyes: np.ndarray  # (2,) opening ratios, for eye retargeting
    sha256: str  # of the 256 input's bytes: the face's identity in the render cache


def prepare_source(image: np.ndarray, landmarks: np.ndarray, eyelids: np.ndarray,
                   scale: float = SOURCE_CROP_SCALE) -> SourceFace:
    """Official source crop (scale 2.3, vy -0.125, eyes levelled) to 512, then INTER_AREA 256;
    the eye ratios from the refined ``eyelids`` (``Landmarker.eyelids``), on the official scale
    like the driving ratios they are combined with."""
    affine = liveportrait_crop(landmarks, scale=scale)
    crop = warp(image, affine, 512)
    small = np.ascontiguousarray(network_input_256(crop))
    digest = hashlib.sha256(small.tobytes()).hexdigest()
    return SourceFace(affine, small, eye_ratio(eyelids, landmarks), digest)


@dataclass(slots=True)
class AnimationResult:
    """The stage's output. Distinct crop ``k`` shows driving frame ``distinct[k]``; output frame
    ``i`` shows distinct crop ``order[i]``."""

    affine: Affine
    fps: float
    order: np.ndarray
    distinct: np.ndarray
    rendered: int
    reused: int
    motion_cache: CacheState
    render_cache: CacheState
    timings: dict[str, float] = field(default_factory=dict)
    entry: RenderEntry | None = None
    render_batch: int = 0  # most frames in one W + G call (0: nothing was rendered)

    @property
    def n_frames(self) -> int:
        return int(self.order.shape[0])

    @property
    def n_distinct(self) -> int:
        return int(self.distinct.shape[0])

    def crop(self, k: int) -> np.ndarray:
        """Distinct crop ``k`` as (512,512,3) uint8 RGB, read from disk."""
        assert self.entry is not None
        return self.entry.read(int(self.distinct[k]))

    def frame(self, i: int) -> np.ndarray:
        """The crop shown at output frame ``i``."""
        return self.crop(int(self.order[i]))


class LivePortraitStage:
    """Built once per daemon (models stay loaded); ``run`` once per job."""

    def __init__(self, nets: NetRunner, landmarker: Landmarker, settings: PipelineSettings,
                 memory: MemoryProbe | None = None):
        self.nets = nets
        self.landmarker = landmarker
        self.settings = settings
        # what the render device can allocate now (read when a render starts)
        self.memory = memory or (lambda: device_memory(nets.device.type, nets.device.index))
        self.motion_cache = MotionCache(settings.cache_dir)
        self.render_cache = RenderCache(settings.cache_dir, settings.render_cache_mb * 1024 * 1024)

    def run(
        self, image: np.ndarray, landmarks: np.ndarray, driving: Path | MotionMaker,
        audio_seconds: float, fps: float, options: AnimateOptions | None = None,
        progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
    ) -> AnimationResult:
        """Animate the photo for ``audio_seconds`` at ``fps`` with the clip at ``driving``, or
        with the motion a ``MotionMaker`` generates for this photo."""
        options = options or AnimateOptions()
        cancel = cancel or CancelToken()
        self.nets.timings = {}
        source = prepare_source(image, landmarks, self.landmarker.eyelids(image, landmarks),
                                options.crop_scale)
        start = time.perf_counter()
        n_out = output_frame_count(audio_seconds, fps)
        rule: KeypointRule | None = None
        if isinstance(driving, Path):
            clip = clip_motion(driving, self.nets, self.landmarker, self.motion_cache,
                               self.settings.chunk_size, progress, cancel)
            plan = retime(n_out, fps, clip.motion.n_frames, clip.motion.fps,
                          self.settings.loop_mode)
        else:
            made = driving(source.eyes)
            if made.motion.n_frames != n_out:
                raise ValueError(f"generated motion has {made.motion.n_frames} frames, the job "
                                 f"{n_out}")
            clip, rule = ClipMotion(made.motion, made.sha256, CacheState.NONE), made.rule
            every = np.arange(n_out, dtype=np.int64)  # one distinct render per output frame
            plan = RetimePlan(fps=fps, driving_index=every, distinct=every, order=every)
        extract_s = time.perf_counter() - start
        tag = options.tag() if rule is None else f"{options.tag()}|rule={rule.value}"
        key = render_key(source.sha256, clip.sha256, tag, self.nets.render_version,
                         self.nets.motion_version, str(self.nets.dtype), _eye_tag(source, options))
        entry = self.render_cache.open(key, clip.motion.n_frames)
        todo = entry.missing(plan.distinct)
        self.render_cache.evict(keep=key, incoming_bytes=len(todo) * FRAME_BYTES)
        batch = 0
        if len(todo):
            batch = min(self.render_batch(), len(todo))
            self._render(entry, todo, source, clip, options, batch, progress, cancel, rule)
        progress(STAGE, 1.0)
        timings = {"driving_motion": extract_s, **self.nets.timings}
        return AnimationResult(
            affine=source.affine, fps=fps, order=plan.order, distinct=plan.distinct,
            rendered=len(todo), reused=plan.distinct.shape[0] - len(todo),
            motion_cache=clip.cache,
            render_cache=CacheState.MISS if len(todo) else CacheState.HIT,
            timings=timings, entry=entry, render_batch=batch,
        )

    def render_batch(self) -> int:
        """Frames per W + G call now: the set ``batch_size``, or under ``auto`` the policy's
        choice for the memory free at this moment (models loaded) on the stage's device."""
        setting = self.settings.batch_size
        memory = self.memory() if setting == AUTO_BATCH else None
        return render_batch_size(setting, memory, self.nets.device.type,
                                 self.nets.dtype.itemsize)

    def _render(self, entry: RenderEntry, todo: np.ndarray, source: SourceFace, clip: ClipMotion,
                options: AnimateOptions, size: int, progress: ProgressFn,
                cancel: CancelToken, rule: KeypointRule | None = None) -> None:
        """Render driving frames ``todo`` in chunks of ``size``, each stored before the next."""
        cancel.raise_if_cancelled()
        nets = self.nets
        nets.expect_renders(len(todo))
        src = nets.keypoint_info(source.input256[None]).source()
        f_s = nets.appearance_features(source.input256[None])
        multiplier = None
        if rule is None and options.driving_option is DrivingOption.EXPRESSION_FRIENDLY:
            multiplier = expression_multiplier(src, clip.motion)
        for n, start in enumerate(range(0, len(todo), size)):
            cancel.raise_if_cancelled()
            chunk = todo[start:start + size]
            if rule is None:
                x_d = self._driving_keypoints(src, clip, chunk, options, multiplier, source.eyes)
            else:
                x_d = self.generated_keypoints(src, clip, chunk, options, rule, source.eyes)
            entry.write(chunk, nets.render(f_s, src.x_s[None], x_d))
            progress(STAGE, min(1.0, (n + 1) * size / len(todo)))
        cancel.raise_if_cancelled()

    def _driving_keypoints(self, src: SourceKeypoints, clip: ClipMotion, chunk: np.ndarray,
                           options: AnimateOptions, multiplier: float | None,
                           source_eyes: np.ndarray) -> np.ndarray:
        """x_d (B,21,3) for a chunk of driving frames: official Algorithm 1 order."""
        x_s = src.x_s[None]
        if options.eye_retargeting:
            if clip.motion.c_eyes is None:
                raise InputError("this driving template has no eye ratios for eye retargeting",
                                 fix="turn eye retargeting off or use a video clip")
            # official calc_combined_eye_ratio: [c_s_left, c_s_right, c_d_left] (issue #154)
            ratios = np.concatenate(
                [np.broadcast_to(source_eyes, (len(chunk), 2)), clip.motion.c_eyes[chunk, :1]],
                axis=1).astype(np.float32)
            x_d = x_s + self.nets.eye_delta(x_s, ratios)
        else:
            x_d = relative_keypoints(src, clip.motion, chunk, options.driving_option,
                                     options.hold_lips, multiplier)
        if options.stitching:
            x_d = self.nets.stitch(x_s, x_d)
        x_d = x_s + (x_d - x_s) * options.driving_multiplier
        return np.ascontiguousarray(x_d, dtype=np.float32)

    def generated_keypoints(self, src: SourceKeypoints, clip: ClipMotion, chunk: np.ndarray,
                            options: AnimateOptions, rule: KeypointRule,
                            source_eyes: np.ndarray) -> np.ndarray:
        """x_d (B,21,3) for generated motion: relative pose, then (still) the blinks' eye
        retargeting added before stitching, as the official retargeting does (Gradio
        ``execute_image_retargeting``: pose, + eyes delta, stitching)."""
        x_s = src.x_s[None]
        motion = clip.motion
        x_d = posed_keypoints(src, motion, chunk, options.hold_lips,
                              absolute_lips=rule is KeypointRule.VOICE)
        if rule is KeypointRule.BLINKS and motion.c_eyes is not None:
            # official calc_combined_eye_ratio: [c_s_left, c_s_right, c_d_left] (issue #154)
            eyes = np.broadcast_to(source_eyes, (len(chunk), 2))
            ratios = np.concatenate([eyes, motion.c_eyes[chunk, :1]], axis=1)
            rest = np.concatenate([eyes, eyes[:, :1]], axis=1)
            # R_eyes at the source's own ratio is not exactly zero: subtracting it keeps the
            # frames between blinks the pure pose, and a blink only the lids
            x_d = x_d + (self.nets.eye_delta(x_s, ratios.astype(np.float32))
                         - self.nets.eye_delta(x_s, rest.astype(np.float32)))
        if options.stitching:
            x_d = self.nets.stitch(x_s, x_d)
        x_d = x_s + (x_d - x_s) * options.driving_multiplier
        return np.ascontiguousarray(x_d, dtype=np.float32)


def _eye_tag(source: SourceFace, options: AnimateOptions) -> str:
    """Eye retargeting also depends on the source's eye ratios (from its landmarks)."""
    return np.array2string(source.eyes, precision=6) if options.eye_retargeting else ""
