"""What must be set up before a job can run, checked all at once and reported in fixing order.

A first ``facedrop run`` on a fresh install lacks several things; reporting only the first one
the chain trips over sends the user round the loop once per missing piece. ``missing`` lists
every one, in the order that fixes them: the model weights first (nothing runs without them),
then the driving clip. The check is cheap (file presence, no hashing, no model loading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pipeline.errors import FacedropError, InputError
from pipeline.lipsync.registry import engine_entry
from pipeline.liveportrait.drivers import DriverLibrary, resolve_driving
from pipeline.settings import PipelineSettings
from pipeline.weights.manifest import MANIFEST, WeightFile
from pipeline.weights.verify import FileStatus, State, check_entry

ALWAYS_NEEDED = ("liveportrait", "landmarks")  # weight groups every job uses
ENHANCE_FILE = "GFPGANv1.4"


@dataclass(frozen=True, slots=True)
class JobNeeds:
    """What one job uses: lip sync and enhance on or off, and the driving clip it asks for."""

    lipsync: bool = True
    enhance: bool = False
    driving: str | Path | None = None  # as in ``JobSpec.driving``; None means the default clip
    job_dir: Path | None = None
    lipsync_engine: str | None = None  # as in ``JobSpec.lipsync_engine``; None: the configured
    motion: str | None = None  # as in ``JobSpec.motion`` (job.yaml ``motion:``)


@dataclass(frozen=True, slots=True)
class Missing:
    """One missing prerequisite: what is missing and the command that fixes it."""

    what: str
    fix: str


class PrerequisitesError(FacedropError):
    """facedrop is not set up for this job yet; ``missing`` lists every gap in fixing order."""

    exit_code = 5
    title = "Not set up yet"

    def __init__(self, missing: Sequence[Missing]) -> None:
        self.missing = tuple(missing)
        steps = "\n".join(f"  {n}. {m.what}\n     Fix: {m.fix}"
                          for n, m in enumerate(self.missing, 1))
        count = "1 thing is" if len(self.missing) == 1 else f"{len(self.missing)} things are"
        super().__init__(f"{count} missing (in the order to fix them):\n{steps}",
                         fix="do the steps above in order, then run the command again")


def needed_weights(settings: PipelineSettings, needs: JobNeeds,
                   manifest: Sequence[WeightFile] = MANIFEST) -> list[WeightFile]:
    """The model files this job loads."""
    names: set[str] = set()
    groups = set(ALWAYS_NEEDED)
    if needs.lipsync:
        engine = engine_entry(needs.lipsync_engine or settings.lipsync_model)
        names.update(engine.weight_names)
        groups.update(engine.weight_groups)
    if needs.enhance:
        names.add(ENHANCE_FILE)
    return [e for e in manifest if e.group in groups or e.name in names]


def _fetch_args(bad: Sequence[FileStatus], manifest: Sequence[WeightFile]) -> str:
    """``weights fetch`` arguments for the missing files: a group when all of it is missing."""
    wanted = {s.entry for s in bad}
    args: list[str] = []
    for entry in (s.entry for s in bad):
        group = [e for e in manifest if e.group == entry.group]
        arg = entry.group if set(group) <= wanted else entry.filename
        if arg not in args:
            args.append(arg)
    return " ".join(args)


def weights_gap(settings: PipelineSettings, needs: JobNeeds,
                manifest: Sequence[WeightFile] = MANIFEST) -> Missing | None:
    """The job's missing model files as one item, or None when they are all there.

    Only presence is checked: whether a file that is there is the right one is for its loader
    (which names the key or shape that is wrong) and for ``weights verify`` / ``doctor``.
    """
    statuses = [check_entry(e, settings.weights_dir, hash_files=False)
                for e in needed_weights(settings, needs, manifest)]
    bad = [s for s in statuses if s.state is State.MISSING]
    if not bad:
        return None
    listing = ", ".join(s.entry.relpath for s in bad)
    return Missing(
        f"model weights in {settings.weights_dir}, missing: {listing}",
        f"facedrop weights fetch {_fetch_args(bad, manifest)}  (offline: facedrop weights "
        "import DIR, with a folder holding the files)",
    )


def driving_gap(settings: PipelineSettings, needs: JobNeeds) -> Missing | None:
    """The driving clip the job would use, if it cannot be found, as one item."""
    try:
        resolve_driving(needs.driving, DriverLibrary(settings.drivers_dir), job_dir=needs.job_dir,
                        default=settings.default_driver)
    except InputError as err:
        return Missing(f"driving clip: {err.problem}", err.fix)
    return None


def missing(settings: PipelineSettings, needs: JobNeeds,
            manifest: Sequence[WeightFile] = MANIFEST, *, clip_needed: bool = True,
            voice_gap: Missing | None = None) -> list[Missing]:
    """Every missing prerequisite for a job like ``needs``, weights first (``voice_gap``: the
    voice weights, when the job must have voice motion; ``clip_needed`` False: the job's motion
    is generated, so no driving clip is needed)."""
    gaps = (weights_gap(settings, needs, manifest), voice_gap,
            driving_gap(settings, needs) if clip_needed else None)
    return [g for g in gaps if g is not None]


@runtime_checkable
class ChecksPrerequisites(Protocol):
    """A pipeline that can say what it lacks before a job starts (the real one can)."""

    def missing_prerequisites(self, needs: JobNeeds) -> list[Missing]: ...


def require(pipeline: object, needs: JobNeeds) -> None:
    """Raise one ``PrerequisitesError`` listing every gap ``pipeline`` reports for the job.

    A pipeline without the check (a test stand-in) is taken as ready.
    """
    if isinstance(pipeline, ChecksPrerequisites):
        gaps = pipeline.missing_prerequisites(needs)
        if gaps:
            raise PrerequisitesError(gaps)
