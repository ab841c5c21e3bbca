"""The driving library: named driving clips (videos, or official ``.pkl`` motion templates).

Layout: ``<drivers_dir>/<name><suffix>``, one file per clip. A clip is identified by the sha256
of its bytes (the motion cache's key), so renaming a clip keeps its cached motion. Files are
copied in atomically (temp name, fsync, rename) so a crash never leaves a half clip that looks
real.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from pipeline.atomic import copy_file_atomic
from pipeline.digest import sha256_file
from pipeline.errors import InputError
from pipeline.liveportrait.template import load_template
from pipeline.media import formats
from pipeline.media.video import probe_video

# A library clip may be any container PyAV reads well; a job folder's video keeps the
# documented job-folder types (pipeline.media.formats), which readiness can check for wholeness.
VIDEO_SUFFIXES = (*formats.VIDEO_EXT, ".m4v", ".mkv", ".webm")
TEMPLATE_SUFFIX = ".pkl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CLIP_SUFFIXES = (*VIDEO_SUFFIXES, TEMPLATE_SUFFIX)
ADD_FIX = "add one with 'facedrop drivers add VIDEO' (the first clip added becomes the default)"


@dataclass(frozen=True, slots=True)
class Driver:
    """One library clip: its name, file, content hash, and length."""

    name: str
    path: Path
    sha256: str
    frames: int
    fps: float

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps else 0.0

    @property
    def is_template(self) -> bool:
        return self.path.suffix.lower() == TEMPLATE_SUFFIX


def describe(path: Path, name: str) -> Driver:
    """Validate a clip file (decodable video or safe template) and describe it."""
    if path.suffix.lower() == TEMPLATE_SUFFIX:
        motion = load_template(path)
        frames, fps = motion.n_frames, motion.fps
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        info = probe_video(path)
        frames, fps = info.frames, float(info.fps)
    else:
        raise InputError(
            f"'{path.name}' is not a driving clip",
            file=path,
            fix=f"use a video ({', '.join(VIDEO_SUFFIXES)}) or a LivePortrait .pkl template",
        )
    if frames < 1:
        raise InputError("the driving clip has no frames", file=path)
    return Driver(name=name, path=path, sha256=sha256_file(path), frames=frames, fps=fps)


def clip_name(text: str) -> str:
    """A library name made from ``text`` (a file stem): unsafe characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64]
    if not name:
        raise InputError(f"'{text}' cannot be made into a clip name", fix="pass --name NAME")
    return name


class DriverLibrary:
    """The folder of named driving clips."""

    def __init__(self, drivers_dir: Path) -> None:
        self.root = drivers_dir

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(
            p for p in self.root.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in CLIP_SUFFIXES
        )

    def find(self, name: str) -> Path | None:
        """The file of the clip called ``name``, or None."""
        return next((p for p in self._files() if p.stem == name), None)

    def list(self) -> list[Driver]:
        """Every clip in the library, by name."""
        return [describe(p, p.stem) for p in self._files()]

    def names(self) -> builtins.list[str]:
        """The clips' names, sorted."""
        return [p.stem for p in self._files()]

    def add(self, video: Path, name: str | None = None) -> Driver:
        """Copy ``video`` (or a ``.pkl`` template) into the library as ``name``.

        The source is validated first. Adding the same bytes under the same name again is a
        no-op; a different clip under a taken name is an ``InputError``.
        """
        if not video.is_file():
            raise InputError("the driving clip does not exist", file=video)
        name = clip_name(name if name is not None else video.stem)
        if not _NAME.match(name):
            raise InputError(f"'{name}' is not a valid clip name", fix="use letters, digits, . _ -")
        source = describe(video, name)
        existing = self.find(name)
        if existing is not None:
            if sha256_file(existing) == source.sha256:
                return describe(existing, name)
            raise InputError(
                f"a different driving clip called '{name}' is already in the library",
                file=existing,
                fix="choose another name with --name",
            )
        dest = self.root / f"{name}{video.suffix.lower()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        copy_file_atomic(video, dest)
        return Driver(name, dest, source.sha256, source.frames, source.fps)


class DrivingSource(StrEnum):
    """Where a job's driving clip comes from."""

    JOB_FOLDER = "job folder"  # a video (or .pkl template) the job brought along
    LIBRARY = "library"  # a clip the job names from the driving library
    DEFAULT = "default"  # the job names none: the configured default clip


@dataclass(frozen=True, slots=True)
class DrivingChoice:
    """The clip a job is driven by: its file, the name to show, and where it comes from."""

    path: Path
    name: str
    source: DrivingSource


def resolve_driving(
    wanted: str | Path | None,
    library: DriverLibrary,
    *,
    job_dir: Path | None = None,
    default: str = "",
    job_file: Path | None = None,
) -> DrivingChoice:
    """The one rule for which clip drives a job (job parsing, the runner, the first-run check).

    ``wanted`` is what the job asks for: a ``Path`` already chosen in the job folder, a name, or
    None. A name with a clip suffix, or naming a file in ``job_dir``, is that file, which must
    stay inside the folder; ``NAME`` also finds ``NAME.mp4`` (etc.) in the folder; otherwise it
    is a library clip. None means ``default``, which must be in the library. Every failure is an
    ``InputError`` naming the clip and how to add one; ``job_file`` is the file it blames.
    """
    if isinstance(wanted, Path):
        return _job_clip(wanted, job_dir or wanted.parent, job_file)
    if not wanted:
        return _default_clip(library, default)
    local = _local_name(job_dir, wanted) if job_dir is not None else None
    if job_dir is not None and local is not None:
        return _job_clip(job_dir / local, job_dir, job_file)
    if not _NAME.match(wanted):
        raise InputError(
            f"'driving: {wanted}' is not a clip name",
            file=job_file,
            fix="use a name from 'facedrop drivers list' or a video file in the job folder",
        )
    found = library.find(wanted)
    if found is not None:
        return DrivingChoice(found, wanted, DrivingSource.LIBRARY)
    raise InputError(
        f"no driving clip called '{wanted}' (library: {_known(library)})",
        file=job_file,
        fix=f"see 'facedrop drivers list'; {ADD_FIX}; or put the video in the job folder",
    )


def _known(library: DriverLibrary) -> str:
    return ", ".join(library.names()) or "empty"


def _local_name(job_dir: Path, wanted: str) -> str | None:
    """The job-folder file ``wanted`` means, if any: by suffix, by exact name, or NAME.mp4."""
    if PurePosixPath(wanted).suffix.lower() in CLIP_SUFFIXES or (job_dir / wanted).exists():
        return wanted
    if not _NAME.match(wanted):
        return None
    return next((f"{wanted}{s}" for s in VIDEO_SUFFIXES if (job_dir / f"{wanted}{s}").is_file()),
                None)


def _job_clip(path: Path, job_dir: Path, job_file: Path | None) -> DrivingChoice:
    """A clip file in the job folder: a plain name, inside the folder (links too), present."""
    name = str(path.relative_to(job_dir)) if path.is_relative_to(job_dir) else str(path)
    key = f"'driving: {name}'"
    if PurePosixPath(name).is_absolute() or name.startswith("~") or "\\" in name:
        raise InputError(f"{key} must be a plain file name inside the job folder",
                         fix="give just the file name, e.g. talk.mp4", file=job_file)
    if ".." in PurePosixPath(name).parts:
        raise InputError(f"{key} points outside the job folder",
                         fix="put the file in the job folder", file=job_file)
    real = path.resolve()
    if not real.is_relative_to(job_dir.resolve()):
        raise InputError(
            f"'{path.name}' is a link to a file outside the job folder ({real})",
            fix="copy the file itself into the job folder",
            file=path,
        )
    if not path.is_file():
        raise InputError(f"{key} names a file that is not in the job folder",
                         fix="check the spelling or add the file", file=path)
    return DrivingChoice(path, path.name, DrivingSource.JOB_FOLDER)


def _default_clip(library: DriverLibrary, default: str) -> DrivingChoice:
    """The configured default clip, which must be in the library."""
    if not default:
        raise InputError(
            "no driving clip: the job names none and no default clip is set",
            fix=f"{ADD_FIX}; or 'facedrop drivers fetch' for the LivePortrait example clips",
        )
    found = library.find(default)
    if found is None:
        raise InputError(
            f"the default driving clip '{default}' is not in the library "
            f"(library: {_known(library)})",
            file=library.root,
            fix="'facedrop drivers add VIDEO --default', or set pipeline.default_driver to a "
                "clip from 'facedrop drivers list'",
        )
    return DrivingChoice(found, default, DrivingSource.DEFAULT)

