"""From JoyVASA's normalised 70-number frames to a LivePortrait ``DrivingMotion``.

Ported from jdh-algo/JoyVASA at commit 74290f61accfbabef19b195a54b8122141f0e336:
``src/live_portrait_wmg_wrapper.py: gen_motion_sequence`` (L425-447: ``exp`` by mean/std,
``scale``/``t``/``pitch``/``yaw``/``roll`` by min/max, no epsilon) and
``src/utils/filter.py: smooth_`` (``is_smooth_motion=True`` in ``argument_config.py``: an
exponential moving average with alpha 0.01 over scale, t and the three angles, in float32; the
expression is left as is; R rebuilt from the smoothed angles).

``motion_template.pkl`` is a pickle of numpy arrays; it is read with the numpy-only unpickler of
``pipeline.liveportrait.template`` (no other global resolves).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import WeightsError
from pipeline.liveportrait.template import DrivingMotion, _NumpyOnlyUnpickler
from pipeline.models.liveportrait.keypoints import get_rotation_matrix

MOTION_DIM = 70  # exp 63, scale 1, t 3, pitch, yaw, roll
EMA_ALPHA = np.float32(0.01)
MAX_TEMPLATE_BYTES = 1 << 20
FETCH_FIX = "run 'facedrop weights fetch voice'"
# (key, size) the de-normalisation reads
_FIELDS = (("std_exp", 63), ("mean_exp", 63), ("min_scale", 1), ("max_scale", 1), ("min_t", 3),
           ("max_t", 3), ("min_pitch", 1), ("max_pitch", 1), ("min_yaw", 1), ("max_yaw", 1),
           ("min_roll", 1), ("max_roll", 1))


@dataclass(frozen=True, slots=True)
class MotionStats:
    """The template statistics, as the official code multiplies them (float32 arrays)."""

    arrays: Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class PoseFrames:
    """De-normalised frames before the rotation is built: (F, k) float32 each."""

    exp: np.ndarray  # (F, 63)
    scale: np.ndarray  # (F, 1)
    t: np.ndarray  # (F, 3)
    angles: np.ndarray  # (F, 3) pitch, yaw, roll in degrees


def load_stats(path: Path) -> MotionStats:
    """Read ``motion_template.pkl``; ``WeightsError`` for a missing, unsafe or foreign file."""
    if not path.is_file():
        raise WeightsError("the JoyVASA motion template is missing", file=path, fix=FETCH_FIX)
    data = path.read_bytes()
    if len(data) > MAX_TEMPLATE_BYTES:
        raise WeightsError("the JoyVASA motion template is too large to be one", file=path,
                           fix=FETCH_FIX)
    try:
        raw = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # a hostile or broken pickle can raise nearly anything
        raise WeightsError(f"the JoyVASA motion template cannot be read safely ({exc})",
                           file=path, fix=f"delete it and {FETCH_FIX}") from exc
    if not isinstance(raw, dict):
        raise WeightsError("the JoyVASA motion template is not a dict of arrays", file=path,
                           fix=FETCH_FIX)
    arrays: dict[str, np.ndarray] = {}
    for key, size in _FIELDS:
        value = np.asarray(raw.get(key))
        if value.dtype.kind != "f" or value.size != size or not np.isfinite(value).all():
            raise WeightsError(f"the JoyVASA motion template's {key} is not {size} finite "
                               "numbers", file=path, fix=FETCH_FIX)
        arrays[key] = value.reshape(size)
    return MotionStats(arrays)


def denormalise(coef: torch.Tensor, stats: MotionStats) -> PoseFrames:
    """(F, 70) normalised frames -> de-normalised fields, as the official per-frame loop.

    The official code multiplies a float32 torch row by the template's numpy arrays; torch turns
    them into tensors of their own dtype, so the arithmetic runs in the template's dtype and is
    cast to float32 at the end. The same is done here for all frames at once.
    """
    if coef.ndim != 2 or coef.shape[1] != MOTION_DIM:
        raise ValueError(f"expected (F, {MOTION_DIM}) motion, got {tuple(coef.shape)}")
    c = coef.detach().cpu()
    a = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stats.arrays.items()}

    def minmax(part: torch.Tensor, name: str) -> torch.Tensor:
        return part * (a[f"max_{name}"] - a[f"min_{name}"]) + a[f"min_{name}"]

    exp = c[:, :63] * a["std_exp"] + a["mean_exp"]
    angles = torch.cat([minmax(c[:, 67 + i : 68 + i], n)
                        for i, n in enumerate(("pitch", "yaw", "roll"))], dim=1)
    return PoseFrames(exp=_f32(exp), scale=_f32(minmax(c[:, 63:64], "scale")),
                      t=_f32(minmax(c[:, 64:67], "t")), angles=_f32(angles))


def smooth(frames: PoseFrames) -> PoseFrames:
    """Official ``smooth_(method='ema')``: s_0 = x_0, s_i = 0.01 x_i + 0.99 s_(i-1), in float32,
    over [scale, t, pitch, yaw, roll]; the expression passes through."""
    data = np.concatenate([frames.scale, frames.t, frames.angles], axis=1).astype(np.float32)
    out = np.empty_like(data)
    state = data[0]
    out[0] = state
    keep = np.float32(1 - 0.01)  # the official (1 - alpha) of Python floats, then float32
    for i in range(1, len(data)):
        state = EMA_ALPHA * data[i] + keep * state
        out[i] = state
    return PoseFrames(exp=frames.exp, scale=out[:, 0:1], t=out[:, 1:4], angles=out[:, 4:7])


def resample(frames: PoseFrames, src_fps: float, fps: float, n_frames: int) -> PoseFrames:
    """``n_frames`` frames at ``fps`` from frames at ``src_fps``, linearly interpolated in time
    (frame i at i / fps seconds); the last source frame holds past the end. At equal rates the
    frames are the source frames themselves."""
    n_src = frames.exp.shape[0]
    pos = np.arange(n_frames, dtype=np.float64) * (src_fps / fps)
    if src_fps == fps:
        idx = np.minimum(np.arange(n_frames), n_src - 1)
        return PoseFrames(*(v[idx] for v in (frames.exp, frames.scale, frames.t, frames.angles)))
    lo = np.minimum(np.floor(pos).astype(np.int64), n_src - 1)
    hi = np.minimum(lo + 1, n_src - 1)
    w = np.clip(pos - lo, 0.0, 1.0)[:, None]

    def mix(v: np.ndarray) -> np.ndarray:
        return ((1 - w) * v[lo] + w * v[hi]).astype(np.float32)

    return PoseFrames(mix(frames.exp), mix(frames.scale), mix(frames.t), mix(frames.angles))


def to_driving_motion(frames: PoseFrames, fps: float) -> DrivingMotion:
    """The DrivingMotion the render path consumes: R = (Rz Ry Rx)^T from the angles."""
    ang = torch.from_numpy(frames.angles)
    rot = get_rotation_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    return DrivingMotion(fps=float(fps), scale=frames.scale.astype(np.float32),
                         R=rot.numpy().astype(np.float32),
                         exp=frames.exp.reshape(-1, 21, 3).astype(np.float32),
                         t=frames.t.astype(np.float32))


def _f32(x: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(np.float32)
