"""The driving-clip library as the ``drivers`` commands use it: one function per command.

``add_clip``, ``list_clips`` and ``fetch_clips`` return plain results; the CLI draws them and
writes the default clip into the user's config (the pipeline never writes config files). The
rule for the default: the first clip added becomes it, ``make_default`` makes any clip it, and a
default that names a clip no longer in the library is replaced by the next one added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pipeline.errors import WeightsError
from pipeline.liveportrait import examples
from pipeline.liveportrait.drivers import Driver, DriverLibrary
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.settings import PipelineSettings
from pipeline.spec import CacheState

EXAMPLES_LICENCE = examples.LICENCE


class Motion(StrEnum):
    """Whether a clip's motion is ready without extracting it on the next job."""

    TEMPLATE = "template"  # a .pkl motion template: nothing to extract
    CACHED = "yes"
    NOT_CACHED = "no"


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """One library clip as ``drivers list`` shows it."""

    driver: Driver
    motion: Motion
    is_default: bool

    def as_json(self) -> dict[str, object]:
        d = self.driver
        return {"name": d.name, "path": str(d.path), "frames": d.frames, "fps": d.fps,
                "seconds": round(d.duration, 3), "sha256": d.sha256,
                "motion_cached": self.motion.value, "default": self.is_default}


@dataclass(frozen=True, slots=True)
class Added:
    """The clip ``add_clip`` put in the library; ``new_default`` is set when it becomes it."""

    driver: Driver
    new_default: str | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """The example clips, their motion (or why it waits for first use), and a new default."""

    drivers: list[Driver]
    motion: list[CacheState]
    motion_deferred: str  # the reason motion was not extracted now ("" when it was)
    new_default: str | None


def _default_is_usable(library: DriverLibrary, default: str) -> bool:
    return bool(default) and library.find(default) is not None


def add_clip(settings: PipelineSettings, video: Path, name: str | None = None, *,
             make_default: bool = False) -> Added:
    """Copy ``video`` (or a ``.pkl`` template) into the library; say if it becomes the default."""
    library = DriverLibrary(settings.drivers_dir)
    had_default = _default_is_usable(library, settings.default_driver)
    driver = library.add(video, name)
    becomes = make_default or not had_default
    return Added(driver, driver.name if becomes and driver.name != settings.default_driver
                 else None)


def list_clips(settings: PipelineSettings) -> list[ClipInfo]:
    """Every clip in the library, with its motion-cache state and the default marked."""
    cache = MotionCache(settings.cache_dir)
    out = []
    for d in DriverLibrary(settings.drivers_dir).list():
        motion = Motion.TEMPLATE if d.is_template else (
            Motion.CACHED if cache.has_clip(d.sha256) else Motion.NOT_CACHED)
        out.append(ClipInfo(d, motion, d.name == settings.default_driver))
    return out


def fetch_clips(settings: PipelineSettings,
                clips: Sequence[examples.ExampleClip] | None = None) -> Fetched:
    """Download the example clips, extract their motion now if the weights are there."""
    library = DriverLibrary(settings.drivers_dir)
    had_default = _default_is_usable(library, settings.default_driver)
    drivers = examples.fetch_examples(library, examples.EXAMPLE_CLIPS if clips is None else clips)
    new_default = drivers[0].name if drivers and not had_default else None
    from pipeline.liveportrait.loader import extract_library_motion  # loads torch: only here

    try:
        states = extract_library_motion(settings, [d.path for d in drivers])
    except WeightsError as err:
        return Fetched(drivers, [], err.problem, new_default)
    return Fetched(drivers, states, "", new_default)
