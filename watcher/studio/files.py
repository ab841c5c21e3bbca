"""Every file the page serves resolves inside one of facedrop's folders.

A request names a file relative to a root (the outbox): absolute paths, ``..``, backslashes,
NUL bytes, hidden names and anything whose real path (after following links) leaves the root are
refused before the file is opened; only regular files are served.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


class OutsideError(ValueError):
    """A requested path that is not a plain file inside its root."""


def resolve_inside(root: Path, relative: str) -> Path:
    """The regular file ``root/relative`` after checking it stays inside ``root``."""
    if not relative or "\\" in relative or "\0" in relative:
        raise OutsideError("not a plain relative path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or any(part in ("..", ".", "") or part.startswith(".")
                                 for part in pure.parts):
        raise OutsideError("absolute, parent or hidden path")
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root.joinpath(*pure.parts)))
    if not real.is_relative_to(real_root) or real == real_root:
        raise OutsideError("the path leads outside its folder")
    try:
        mode = os.stat(real).st_mode
    except OSError as err:
        raise FileNotFoundError(relative) from err
    if not stat.S_ISREG(mode):
        raise OutsideError("not a regular file")
    return real


def folder_inside(root: Path, name: str) -> Path:
    """The folder ``root/name`` (one plain name, not a link), or ``OutsideError``."""
    if not name or name != PurePosixPath(name).name or name.startswith(".") or "\\" in name \
            or "\0" in name:
        raise OutsideError("not a plain folder name")
    path = root / name
    if path.is_symlink() or not path.is_dir():
        raise FileNotFoundError(name)
    return path
