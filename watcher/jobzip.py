"""A ``.zip`` of a job folder is a job: phones and mail clients send zips. Unpacked safely.

A zip is someone else's file system in one file, so nothing in it is trusted: member names may
point out of the destination (``../``, absolute, drive letters, backslashes), members may be
symlinks or devices, declared sizes may lie, and a few KB may inflate to terabytes. Here every
name is checked before anything is written, links and special files are refused, the member
count, the total size and the compression ratio are bounded by the *bytes actually inflated*
(not the headers), and the job is unpacked into a hidden temporary folder that is renamed into
place only when complete, so a half-unpacked job is never visible.

Layouts accepted: the job's files at the top of the zip (the job is named after the zip), or one
top-level folder holding them (named after that folder); macOS ``__MACOSX/`` and Finder litter
are skipped. Every refusal is a typed ``InputError`` naming the zip and the fix.
"""

from __future__ import annotations

import os
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError
from watcher.jobfolder import JOB_FILE, is_ignored
from watcher.names import fit, name_max
from watcher.saferead import open_regular, shorten

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """Bounds on what one zip may unpack to."""

    max_members: int = 256
    max_total_bytes: int = 2 * 1024**3  # a 10-minute WAV and a large photo fit many times over
    max_ratio: float = 200.0  # inflated / compressed; media barely compresses, bombs do 1000x+


class ZipJobError(InputError):
    """A zip that cannot become a job."""

    title = "Problem with the zipped job"


class ZipUnsafeError(ZipJobError):
    """A member that would land outside the job, or is a link or special file."""


class ZipTooLargeError(ZipJobError):
    """Too many members, too many bytes, or a compression ratio only a zip bomb has."""


class ZipNotAJobError(ZipJobError):
    """Damaged, encrypted, or not laid out as one job folder."""


def is_zip_name(name: str) -> bool:
    """A name the inbox treats as a zipped job."""
    return name.lower().endswith(".zip")


def unpack_job_zip(zip_path: Path, dest: Path, limits: ZipLimits | None = None) -> Path:
    """Unpack the job in ``zip_path`` into ``dest/<job name>`` and return that folder.

    ``dest`` is a staging folder of the caller (created if missing); the job folder appears there
    in one rename, complete. Raises a ``ZipJobError`` subclass on anything unsafe or not a job.
    """
    limits = limits or ZipLimits()
    dest.mkdir(parents=True, exist_ok=True)
    with open_regular(zip_path, zip_path.parent) as fd, os.fdopen(os.dup(fd), "rb") as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise ZipNotAJobError(
                "the zip is damaged or incomplete (it has no readable table of contents)",
                fix="zip the job folder again and put the new zip in the inbox",
                file=zip_path,
            ) from err
        with archive:
            members, root = _plan(archive, zip_path, limits)
            name = fit(root or Path(zip_path.name).stem, name_max(dest))
            staging = dest / f".unzip-{os.getpid()}-{os.urandom(4).hex()}"
            staging.mkdir()
            try:
                _extract(archive, members, root, staging, zip_path, limits)
                target = dest / name
                os.rename(staging, target)  # fails if a folder of that name is there already
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return target


def _plan(
    archive: zipfile.ZipFile, zip_path: Path, limits: ZipLimits
) -> tuple[list[zipfile.ZipInfo], str]:
    """The members to unpack and the top folder they share ("" if the files are at the top)."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ZipTooLargeError(
            f"the zip has {len(infos)} entries; a job may have at most {limits.max_members}",
            fix="zip just the job folder (photo, recording, job.yaml)",
            file=zip_path,
        )
    members, seen = [], set()
    for info in infos:
        parts = _safe_parts(info, zip_path)
        if not parts or parts[0] == "__MACOSX" or any(is_ignored(p) for p in parts):
            continue
        key = tuple(unicodedata.normalize("NFC", p) for p in parts)
        if key in seen:
            raise ZipUnsafeError(
                f"the zip holds '{shorten('/'.join(parts), 60)}' twice",
                fix="zip the job folder again",
                file=zip_path,
            )
        seen.add(key)
        members.append(info)
    declared = sum(i.file_size for i in members)
    if declared > limits.max_total_bytes:
        raise _too_big(zip_path, limits)
    return members, _root(members, zip_path)


def _safe_parts(info: zipfile.ZipInfo, zip_path: Path) -> tuple[str, ...]:
    """The member's path components, refusing escapes, links and special files."""
    raw = info.filename
    pure = PurePosixPath(raw)
    bad = (
        not raw
        or "\\" in raw
        or "\0" in raw
        or pure.is_absolute()
        or ".." in pure.parts
        or (len(raw) > 1 and raw[1] == ":")  # a Windows drive letter
    )
    if bad:
        raise ZipUnsafeError(
            f"the zip entry '{shorten(raw, 60)}' would be unpacked outside the job folder",
            fix="zip the job folder itself, without '..' or absolute paths",
            file=zip_path,
        )
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded no type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise ZipUnsafeError(
            f"the zip entry '{shorten(raw, 60)}' is a link or special file, not a plain file",
            fix="zip the files themselves (not links to them)",
            file=zip_path,
        )
    if info.flag_bits & 0x1:
        raise ZipNotAJobError(
            "the zip is password-protected", fix="zip the job folder without a password",
            file=zip_path,
        )
    return tuple(p for p in pure.parts if p not in ("", "."))


def _root(members: list[zipfile.ZipInfo], zip_path: Path) -> str:
    """"" when job.yaml is at the top; the folder's name when one top folder holds the job."""
    files = [PurePosixPath(i.filename) for i in members if not i.is_dir()]
    if any(p.parts == (JOB_FILE,) for p in files):
        return ""
    tops = {p.parts[0] for p in files if len(p.parts) > 1}
    jobs = sorted({p.parts[0] for p in files if len(p.parts) == 2 and p.name == JOB_FILE})
    if len(jobs) > 1:
        raise ZipNotAJobError(
            f"the zip holds {len(jobs)} job folders ({', '.join(shorten(j, 30) for j in jobs)})",
            fix="send one zip per job",
            file=zip_path,
        )
    if len(jobs) == 1 and tops == set(jobs) and not any(len(p.parts) == 1 for p in files):
        return jobs[0]
    raise ZipNotAJobError(
        "the zip has no job.yaml at its top or in its one folder",
        fix="zip a job folder that holds a job.yaml (it may be empty), a photo and a recording",
        file=zip_path,
    )


def _extract(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    root: str,
    staging: Path,
    zip_path: Path,
    limits: ZipLimits,
) -> None:
    """Write each member under ``staging``, counting the bytes really inflated."""
    total = 0
    for info in members:
        parts = PurePosixPath(info.filename).parts[1 if root else 0 :]
        if not parts:
            continue
        target = staging.joinpath(*parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        total += _inflate(archive, info, target, zip_path, limits, limits.max_total_bytes - total)


def _inflate(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    zip_path: Path,
    limits: ZipLimits,
    budget: int,
) -> int:
    """Inflate one member into a new file; stop at the budget or the ratio bound."""
    written = 0
    cap = max(info.compress_size, 1) * limits.max_ratio + _CHUNK  # small files may compress well
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with archive.open(info) as src, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > budget:
                    raise _too_big(zip_path, limits)
                if written > cap:
                    raise ZipTooLargeError(
                        f"the zip entry '{shorten(info.filename, 60)}' inflates more than "
                        f"{limits.max_ratio:g} times its packed size (a zip bomb?)",
                        fix="zip the job's media files as they are",
                        file=zip_path,
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError) as err:
        raise ZipNotAJobError(
            f"the zip entry '{shorten(info.filename, 60)}' cannot be unpacked ({err})",
            fix="zip the job folder again (the zip may be damaged or use an unknown method)",
            file=zip_path,
        ) from err
    except FileExistsError as err:
        raise ZipUnsafeError(
            f"the zip holds '{shorten(info.filename, 60)}' twice",
            fix="zip the job folder again",
            file=zip_path,
        ) from err
    return written


def _too_big(zip_path: Path, limits: ZipLimits) -> ZipTooLargeError:
    return ZipTooLargeError(
        f"the zip unpacks to more than {limits.max_total_bytes // 1024**2} MB",
        fix="send a smaller job (a photo and a recording are enough)",
        file=zip_path,
    )
