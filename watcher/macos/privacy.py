"""Can this process read (and write) a folder? Tell "missing" from "denied", and say the fix.

Under launchd there is no Terminal whose privacy grant the daemon could borrow: reading Desktop,
Documents, Downloads or a cloud folder (``~/Library/CloudStorage``) without a grant fails with
EPERM "Operation not permitted" and no dialog. The grant belongs to the binary that does the I/O,
the resolved interpreter (``realpath(sys.executable)``), so the fix names that exact file.
Plain Unix permissions fail with EACCES instead and get a chmod fix.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

SETTINGS_FDA = "System Settings > Privacy & Security > Full Disk Access"
SETTINGS_FILES = "System Settings > Privacy & Security > Files and Folders"
PROTECTED = ("Desktop", "Documents", "Downloads", "Library/CloudStorage",
             "Library/Mobile Documents")


class Access(StrEnum):
    """The outcome of probing a folder."""

    OK = "ok"
    MISSING = "missing"
    DENIED = "denied"
    NOT_A_FOLDER = "not a folder"


@dataclass(frozen=True, slots=True)
class Probe:
    """One folder's probe result: what happened and how to fix it."""

    path: Path
    access: Access
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        """The folder can be used."""
        return self.access is Access.OK


def grant_binary() -> Path:
    """The file macOS attributes this process's file access to: the real interpreter binary."""
    return Path(os.path.realpath(sys.executable))


def tcc_fix(path: Path, binary: Path) -> str:
    """The instructions for granting ``binary`` access to ``path`` in System Settings."""
    where = SETTINGS_FDA
    if any(part in str(path) for part in ("/Desktop", "/Documents", "/Downloads")):
        where = f"{SETTINGS_FILES} (or Full Disk Access)"
    return (f"macOS privacy protection blocks {binary} from {path}. Open {where}, click +, "
            f"press Cmd-Shift-G, paste {binary} and switch it on; then run 'facedrop launchagent "
            "restart'. Or move the folder out of Desktop, Documents, Downloads and cloud folders.")


def _classify(err: OSError, path: Path, doing: str, system: str, binary: Path) -> Probe:
    if isinstance(err, FileNotFoundError):
        return Probe(path, Access.MISSING, "does not exist",
                     f"create it (mkdir -p '{path}') or point the config at the right folder")
    if isinstance(err, NotADirectoryError):
        return Probe(path, Access.NOT_A_FOLDER, "is a file, not a folder",
                     "point the config at a folder")
    if err.errno == errno.EPERM and system == "darwin":
        return Probe(path, Access.DENIED, f"cannot {doing}: Operation not permitted (macOS "
                     "privacy protection, TCC)", tcc_fix(path, binary))
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Probe(path, Access.DENIED, f"cannot {doing}: {err.strerror} (file permissions)",
                     f"give your user access: chmod u+rwx '{path}' (and chown it if another "
                     "user owns it)")
    return Probe(path, Access.DENIED, f"cannot {doing}: {err.strerror or err}",
                 "check the disk and the folder")


def _write_probe(path: Path) -> None:
    probe = path / f".facedrop-probe-{os.getpid()}"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    os.unlink(probe)


def probe_folder(path: Path, *, write: bool = False,
                 listdir: Callable[[Path], object] = os.listdir,
                 write_probe: Callable[[Path], None] = _write_probe,
                 system: str | None = None, binary: Path | None = None) -> Probe:
    """List ``path`` (and, with ``write``, create and delete a file in it) and classify failures.

    ``listdir``/``write_probe`` are the OS boundary, injectable for tests; ``system`` defaults to
    ``sys.platform`` and ``binary`` to ``grant_binary()``.
    """
    system = system or sys.platform
    binary = binary or grant_binary()
    try:
        listdir(path)
    except OSError as err:
        return _classify(err, path, "read it", system, binary)
    if write:
        try:
            write_probe(path)
        except OSError as err:
            return _classify(err, path, "write to it", system, binary)
    return Probe(path, Access.OK, "readable and writable" if write else "readable")


def is_protected(path: Path, home: Path | None = None) -> bool:
    """True for folders macOS guards with a privacy prompt (Desktop, Documents, cloud, ...)."""
    home = home or Path.home()
    resolved = Path(os.path.realpath(path))
    return any(resolved.is_relative_to(Path(os.path.realpath(home / p))) for p in PROTECTED)

