"""The driving library: named driving clips (videos, or official ``.pkl`` motion templates).

Layout: ``<drivers_dir>/<name><suffix>``, one file per clip. A clip is identified by the sha256
of its bytes (the motion cache's key), so renaming a clip keeps its cached motion. Files are
copied in atomically (temp name, fsync, rename) so a crash never leaves a half clip that looks
real.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.digest import sha256_file
from pipeline.errors import InputError
from pipeline.liveportrait.template import load_template
from pipeline.media.video import probe_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm")
TEMPLATE_SUFFIX = ".pkl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ADD_FIX = "add one with 'facedrop drivers add VIDEO' or 'facedrop drivers fetch'"


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
        suffixes = (*VIDEO_SUFFIXES, TEMPLATE_SUFFIX)
        return sorted(
            p for p in self.root.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
        )

    def find(self, name: str) -> Path | None:
        """The file of the clip called ``name``, or None."""
        return next((p for p in self._files() if p.stem == name), None)

    def list(self) -> list[Driver]:
        """Every clip in the library, by name."""
        return [describe(p, p.stem) for p in self._files()]

    def names(self) -> builtins.list[str]:  # ``list`` here is the method above
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
        _atomic_copy(video, dest)
        return Driver(name, dest, source.sha256, source.frames, source.fps)

    def resolve(
        self, name_or_path: str | Path | None, job_dir: Path | None, default: str = ""
    ) -> Path:
        """The clip a job asks for: a file in its folder, else a library name, else ``default``."""
        wanted = str(name_or_path) if name_or_path not in (None, "") else default
        if not wanted:
            raise InputError(
                "no driving clip: the job names none and no default clip is set",
                fix=f"set 'driving:' in job.yaml or pipeline.default_driver; {_ADD_FIX}",
            )
        if job_dir is not None:
            candidate = job_dir / wanted
            if candidate.is_file() and candidate.resolve().is_relative_to(job_dir.resolve()):
                return candidate
        found = self.find(wanted)
        if found is not None:
            return found
        known = ", ".join(self.names()) or "none"
        raise InputError(
            f"no driving clip called '{wanted}' (library: {known})",
            file=self.root,
            fix=_ADD_FIX,
        )


def _atomic_copy(src: Path, dest: Path) -> None:
    """Copy to a hidden temp name in the destination folder, fsync, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            fout.flush()
            os.fsync(fout.fileno())
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
