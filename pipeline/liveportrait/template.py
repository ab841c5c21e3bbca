"""Driving motion in LivePortrait's official ``.pkl`` template layout, read with a safe unpickler.

The official ``make_motion_template`` (``src/live_portrait_pipeline.py``) writes::

    {'n_frames': int, 'output_fps': int|float,
     'motion': [{'scale': (1,1), 'R': (1,3,3), 'exp': (1,21,3), 't': (1,3),
                 'kp': (1,21,3), 'x_s': (1,21,3)}, ...],          # float32, one dict per frame
     'c_eyes_lst': [(1,2), ...], 'c_lip_lst': [(1,1), ...]}

Legacy templates (the shipped ``d1/d2/d5/d7/d8.pkl``) name the rotation ``R_d`` and the ratio
lists ``c_d_eyes_lst`` / ``c_d_lip_lst`` and carry no ``kp`` / ``x_s``; animal templates carry
no ratio lists at all. ``R`` is already ``(Rz Ry Rx)^T``, applied to row vectors (``kp @ R``).

A template is a pickle, and a pickle can run code. ``load_template`` therefore uses an
unpickler whose ``find_class`` resolves only the few numpy callables an array or scalar needs
(they construct arrays from bytes and nothing else); every other global, ``os.system`` included,
is refused before anything is called. The result is then checked: numeric arrays of the
expected shapes only.
"""

from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.atomic import write_bytes_atomic
from pipeline.errors import InputError

NUM_KP = 21
MAX_TEMPLATE_BYTES = 256 * 1024 * 1024  # 10 min at 30 fps is ~15 MB; more is not a template

# (module, name) a numpy array / scalar / dtype pickle refers to -> (numpy module, attribute).
# numpy 1.x pickles say numpy.core.*, numpy 2 pickles numpy._core.*; both resolve to the same
# callables without importing the deprecated numpy.core alias.
_ALLOWED: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
}


@dataclass(frozen=True, slots=True)
class DrivingMotion:
    """Per-frame motion of a driving clip, each field stacked over frames (float32).

    ``scale`` (N,1), ``R`` (N,3,3), ``exp`` (N,21,3), ``t`` (N,3); ``kp`` and ``x_s`` (N,21,3)
    when known (legacy templates lack them); ``c_eyes`` (N,2) [left, right] and ``c_lip`` (N,1)
    eye/lip opening ratios when known (animal templates lack them), on the official 203-point
    scale both in official templates and in ours (``pipeline.face.ratios`` maps our points onto
    it), so either kind drives eye retargeting alike. ``fps`` is the clip's exact frame rate as a
    float (e.g. 30000/1001).
    """

    fps: float
    scale: np.ndarray
    R: np.ndarray
    exp: np.ndarray
    t: np.ndarray
    kp: np.ndarray | None = None
    x_s: np.ndarray | None = None
    c_eyes: np.ndarray | None = None
    c_lip: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.R.shape[0])

    @property
    def duration(self) -> float:
        """Seconds the clip lasts at its frame rate."""
        return self.n_frames / self.fps if self.fps > 0 else 0.0


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the numpy callables that rebuild arrays, scalars and dtypes."""

    def find_class(self, module: str, name: str) -> object:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        where, attr = target
        return getattr(_numpy_module(where), attr)


def _numpy_module(where: str) -> object:
    if where == "numpy":
        return np
    try:  # numpy >= 1.26 ships numpy._core; older ones only numpy.core
        return importlib.import_module(f"numpy._core.{where}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{where}")


def load_template(path: Path) -> DrivingMotion:
    """Read an official (current or legacy) driving template, refusing anything but arrays.

    Raises ``InputError`` for a crafted, corrupt or malformed file; never executes its content.
    """
    size = path.stat().st_size
    if size > MAX_TEMPLATE_BYTES:
        raise InputError(f"the driving template is too large ({size} bytes)", file=path)
    data = path.read_bytes()
    try:
        raw = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # a hostile or broken pickle can raise nearly anything
        raise InputError(
            f"the driving template cannot be read safely ({exc})",
            file=path,
            fix="use a template made by facedrop or the official LivePortrait code",
        ) from exc
    try:
        return motion_from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"the driving template does not have the LivePortrait layout ({exc})",
            file=path,
            fix="use a template made by facedrop or the official LivePortrait code",
        ) from exc


def motion_from_dict(raw: object) -> DrivingMotion:
    """Build a ``DrivingMotion`` from the official dict layout (current or legacy keys)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("motion"), list) or not raw["motion"]:
        raise ValueError("expected a dict with a non-empty 'motion' list")
    frames = raw["motion"]
    if not all(isinstance(f, dict) for f in frames):
        raise TypeError("every 'motion' entry must be a dict")
    key_r = "R" if "R" in frames[0] else "R_d"  # legacy templates say R_d
    motion = DrivingMotion(
        fps=0.0,  # set below, once the frames are known to be sound
        scale=_stack(frames, "scale", (1,)),
        R=_stack(frames, key_r, (3, 3)),
        exp=_stack(frames, "exp", (NUM_KP, 3)),
        t=_stack(frames, "t", (3,)),
        kp=_stack(frames, "kp", (NUM_KP, 3)) if "kp" in frames[0] else None,
        x_s=_stack(frames, "x_s", (NUM_KP, 3)) if "x_s" in frames[0] else None,
        c_eyes=_stack_list(raw, ("c_eyes_lst", "c_d_eyes_lst"), (2,), len(frames)),
        c_lip=_stack_list(raw, ("c_lip_lst", "c_d_lip_lst"), (1,), len(frames)),
    )
    n_frames = raw.get("n_frames", len(frames))
    if int(n_frames) != len(frames):
        raise ValueError(f"n_frames says {n_frames} but 'motion' has {len(frames)} entries")
    fps = float(raw.get("output_fps", 25))  # the official default when a template has none
    if not 0 < fps <= 1000:
        raise ValueError(f"output_fps {fps} is not a frame rate")
    return replace(motion, fps=fps)


def _stack(frames: list[dict], key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([_array(f[key], shape, key) for f in frames])


def _stack_list(
    raw: dict, keys: tuple[str, str], shape: tuple[int, ...], n: int
) -> np.ndarray | None:
    key = keys[0] if keys[0] in raw else keys[1]
    if key not in raw:
        return None
    items = raw[key]
    if not isinstance(items, list) or len(items) != n:
        raise ValueError(f"'{key}' must be a list with one entry per frame")
    return np.stack([_array(v, shape, key) for v in items])


def _array(value: object, shape: tuple[int, ...], key: str) -> np.ndarray:
    """One frame's value as float32 of ``shape`` (a leading batch dim of 1 is dropped)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"'{key}' holds {arr.dtype}, not numbers")
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"'{key}' has shape {arr.shape}, expected {shape}")
    arr = arr.astype(np.float32).reshape(shape)
    if not np.isfinite(arr).all():
        raise ValueError(f"'{key}' holds NaN or infinite values")
    return arr


_FRAME_KEYS = ("scale", "R", "exp", "t")


def motion_to_dict(motion: DrivingMotion) -> dict[str, object]:
    """The official current layout (per-frame dicts with a leading batch dim of 1)."""
    n = motion.n_frames
    frames: list[dict[str, np.ndarray]] = []
    for i in range(n):
        frame = {k: getattr(motion, k)[i : i + 1].astype(np.float32) for k in _FRAME_KEYS}
        for k in ("kp", "x_s"):  # legacy imports lack these; the official reader ignores them
            value = getattr(motion, k)
            if value is not None:
                frame[k] = value[i : i + 1].astype(np.float32)
        frames.append(frame)
    out: dict[str, object] = {"n_frames": n, "output_fps": float(motion.fps), "motion": frames}
    if motion.c_eyes is not None:
        out["c_eyes_lst"] = [motion.c_eyes[i : i + 1].astype(np.float32) for i in range(n)]
    if motion.c_lip is not None:
        out["c_lip_lst"] = [motion.c_lip[i : i + 1].astype(np.float32) for i in range(n)]
    return out


def save_template(motion: DrivingMotion, path: Path) -> None:
    """Write ``motion`` as an official-layout template, atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # protocol 4: what the official pickle.dump writes, readable by older Pythons
    write_bytes_atomic(path, pickle.dumps(motion_to_dict(motion), protocol=4))
