"""Putting a job into the inbox: ``facedrop submit``, the studio page and ``facedrop retry``.

A job is built in a hidden staging folder in the inbox (the intake ignores dotfiles), its files
first and ``job.yaml`` last, checked with the same parser the daemon uses (so a bad photo gets the
daemon's message at once), then renamed into place in one step under a free name. A job zip is
written under a hidden name, unpacked into a scratch folder to check it the same way, and then
renamed in without replacing anything.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import write_text_atomic
from pipeline.errors import InputError
from watcher.config import Config
from watcher.jobfolder import (
    JOB_FILE,
    VIDEO_EXT,
    parse_job_folder,
    validate_job_keys,
)
from watcher.jobzip import ZipLimits, unpack_job_zip
from watcher.names import fit, name_max, rename_unique

Writer = Callable[[Path], None]  # writes one file's bytes to the given path


@dataclass(frozen=True, slots=True)
class JobFile:
    """One file of a job being submitted: its name in the job folder and how to write it."""

    name: str
    write: Writer


def copy_from(src: Path) -> Writer:
    """A ``Writer`` copying a local file (``facedrop submit``)."""
    def write(dest: Path) -> None:
        shutil.copy2(src, dest)
    return write


def check_file_name(name: str, exts: Iterable[str], what: str) -> str:
    """A plain file name with an accepted suffix (no folders, no dotfiles)."""
    if not name or name != Path(name).name or name in (".", "..") or "\\" in name:
        raise InputError(f"the {what}'s name {name!r} is not a plain file name",
                         fix="rename the file, e.g. face.jpg")
    if name.startswith("."):
        raise InputError(f"the {what}'s name {name!r} starts with a dot (a hidden file)",
                         fix="rename the file, e.g. face.jpg")
    accepted = sorted(exts)
    if Path(name).suffix.lower() not in accepted:
        raise InputError(f"the {what} must be one of {', '.join(accepted)}", file=name)
    return name


def check_job_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise InputError(f"the job name {name!r} is not a usable folder name",
                         fix="use letters, digits, spaces, '-' or '_'")
    return name


def job_settings(face: str, audio: str, driving: str | None,
                 settings: dict[str, Any]) -> dict[str, Any]:
    """The ``job.yaml`` of a photo + voice job, checked as the daemon will check it."""
    data: dict[str, Any] = {"face": face, "audio": audio}
    if driving:
        data["driving"] = driving
    data.update(settings)
    validate_job_keys(data, "the job settings")
    names = [n for n in (face, audio, driving if driving and Path(driving).suffix.lower()
                         in VIDEO_EXT else None) if n]
    if len(set(names)) != len(names):
        raise InputError("the files must have different names")
    return data


def submit_job(config: Config, name: str, files: Sequence[JobFile],
               data: dict[str, Any]) -> Path:
    """Write a job folder into the inbox (files, then job.yaml, then one rename); its path.

    The staged folder is parsed like the daemon parses it first: a bad file is refused here,
    with the daemon's message, and nothing reaches the inbox.
    """
    check_job_name(name)
    inbox = config.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    partial = _staging(inbox, f".partial-{name}")
    try:
        for item in files:
            item.write(partial / item.name)
        write_text_atomic(partial / JOB_FILE, yaml.safe_dump(data, sort_keys=False))
        _parse_staged(partial, config, name)
        return _rename_unique(partial, inbox, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def submit_zip(config: Config, name: str, write: Writer,
               limits: ZipLimits | None = None) -> Path:
    """Write a job zip into the inbox under ``name``.zip (or ``name (2)``.zip), checked first:
    it unpacks within the zip limits and the job in it parses."""
    check_job_name(name)
    inbox = config.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    scratch = _staging(inbox, f".partial-{name}")
    try:
        held = scratch / f"{name}.zip"
        write(held)
        try:
            folder = unpack_job_zip(held, scratch / "unpacked", limits)
        except InputError as err:
            err.file = f"{name}.zip"  # the user's zip, not our scratch copy
            raise
        _parse_staged(folder, config, folder.name)
        return _link_unique(held, inbox, name, ".zip")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def resubmit(config: Config, name: str, source: Path) -> Path:
    """Copy a job's files (an outbox folder's ``input/``) into the inbox as a new job."""
    inbox = config.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    partial = _staging(inbox, f".partial-{name}")
    try:
        shutil.rmtree(partial)
        shutil.copytree(source, partial, symlinks=True)
        if not (partial / JOB_FILE).is_file():  # job.yaml last, as a careful submitter does
            write_text_atomic(partial / JOB_FILE, "")
        return _rename_unique(partial, inbox, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _parse_staged(folder: Path, config: Config, name: str) -> None:
    """The daemon's checks on a staged job; a file is named as the user knows it."""
    try:
        parse_job_folder(folder, config, name)
    except InputError as err:
        if err.file and Path(err.file).is_relative_to(folder):
            err.file = str(Path(err.file).relative_to(folder))
        raise


def _staging(inbox: Path, prefix: str) -> Path:
    # Fitted to the inbox's name limit in bytes: a 250-byte name still gets a staging folder.
    path = inbox / fit(prefix, name_max(inbox), f"-{os.getpid()}-{time.time_ns():x}")
    path.mkdir()
    return path


def _rename_unique(partial: Path, inbox: Path, name: str) -> Path:
    """Rename the finished job folder into the inbox under a free name fitted to the disk."""
    try:
        return rename_unique(partial, inbox, name)
    except FileExistsError:
        raise InputError(f"no free job name for {name} in the inbox", file=inbox) from None


def _link_unique(src: Path, folder: Path, stem: str, suffix: str) -> Path:
    """Hard-link ``src`` into ``folder`` as ``stem``.zip or ``stem (n)``.zip: never replaces a
    file (a rename would), and the name appears complete."""
    limit = name_max(folder)
    for n in range(1, 1000):
        tail = suffix if n == 1 else f" ({n}){suffix}"
        dest = folder / fit(stem, limit, tail)
        try:
            os.link(src, dest)
        except FileExistsError:
            continue
        return dest
    raise InputError(f"no free name for {stem}{suffix} in the inbox", file=folder)


def check_local_file(path: Path, exts: frozenset[str], what: str) -> Path:
    """``facedrop submit``'s check of a file given on the command line."""
    if not path.is_file():
        raise InputError(f"the {what} does not exist", file=path)
    if path.suffix.lower() not in exts:
        raise InputError(f"the {what} must be one of {', '.join(sorted(exts))}", file=path)
    return path

