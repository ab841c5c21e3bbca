"""job.yaml's motion keys: which source drives the job and how generated motion is made.

``motion: voice | still | clip`` reads next to ``driving:``, which still names the clip:
``driving: calm`` alone keeps meaning a clip, ``motion: clip`` with no ``driving:`` is the
library's default clip, and ``motion: voice`` or ``motion: still`` with a ``driving:`` is a
contradiction, refused with the fix. ``seed``, ``motion_steps``, ``head_motion`` and
``face_motion`` tune generated motion; each defaults to the config's ``motion:`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.motion.kinds import AMOUNT_KEYS, AMOUNT_RANGE, MotionSource
from pipeline.settings import PipelineSettings
from pipeline.spec import JobSpec
from watcher.saferead import clip

SOURCES = tuple(m.value for m in MotionSource)
# key -> (accepted types, description for messages, an example line), as jobfolder.JOB_KEYS
MOTION_KEYS: dict[str, tuple[tuple[type, ...], str, str]] = {
    "motion": ((str,), f"one of {', '.join(SOURCES)}", "motion: still"),
    "seed": ((int,), "a whole number, 0 or more", "seed: 7"),
    "motion_steps": ((int,), "a positive number of sampler steps", "motion_steps: 50"),
    "head_motion": ((int, float), "a factor from 0 to 1.5", "head_motion: 0.5"),
    "face_motion": ((int, float), "a factor from 0 to 1.5", "face_motion: 0.8"),
}


def validate_motion_keys(data: dict[str, Any], path: Path | str) -> None:
    """The motion keys' values (their types are checked with the other keys)."""
    motion = data.get("motion")
    if motion is not None and motion not in SOURCES:
        raise InputError(f"'motion' in job.yaml must be one of {', '.join(SOURCES)}, not "
                         f"{clip(motion)}",
                         fix="write motion: voice, motion: still, or motion: clip (with "
                         "driving: NAME for a clip other than the default)", file=path)
    if motion in (MotionSource.VOICE, MotionSource.STILL) and "driving" in data:
        raise InputError(f"job.yaml says motion: {motion} and also names a driving clip",
                         fix=f"remove 'driving:' for {motion} motion, or write motion: clip",
                         file=path)
    for key in ("seed", "motion_steps"):
        low = 0 if key == "seed" else 1
        if key in data and data[key] < low:
            raise InputError(f"'{key}' in job.yaml must be {MOTION_KEYS[key][1]}, not "
                             f"{clip(data[key])}", fix=f"write e.g. {MOTION_KEYS[key][2]}",
                             file=path)
    for key in AMOUNT_KEYS:
        if key in data and not AMOUNT_RANGE[0] <= data[key] <= AMOUNT_RANGE[1]:
            raise InputError(f"'{key}' in job.yaml must be from {AMOUNT_RANGE[0]:g} to "
                             f"{AMOUNT_RANGE[1]:g}, not {clip(data[key])}",
                             fix=f"write e.g. {MOTION_KEYS[key][2]} (0 holds still, 1 is the "
                             "motion as generated)", file=path)


def generated(data: dict[str, Any]) -> bool:
    """Whether job.yaml asks for generated motion (so a video in the folder is no clip)."""
    return data.get("motion") in (MotionSource.VOICE, MotionSource.STILL)


def motion_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The ``JobSpec`` fields a validated job.yaml sets (absent keys: the config's)."""
    amounts = {k: float(data[k]) for k in AMOUNT_KEYS if k in data}
    return {"motion": data.get("motion"), "seed": data.get("seed"),
            "motion_steps": data.get("motion_steps"), **amounts}


def resolved_motion(spec: JobSpec, settings: PipelineSettings) -> dict[str, Any]:
    """The motion settings a job runs with, for the outbox's job.yaml (the source itself is
    decided when the job runs, from the weights and the library then: see timing.json)."""
    steps = spec.motion_steps if spec.motion_steps is not None else settings.motion_steps
    return {
        "motion": spec.motion or settings.motion_source,
        "seed": spec.seed if spec.seed is not None else settings.motion_seed,
        "motion_steps": steps if steps is not None else "official",
        "head_motion": spec.head_motion if spec.head_motion is not None
        else settings.head_motion,
        "face_motion": spec.face_motion if spec.face_motion is not None
        else settings.face_motion,
    }
