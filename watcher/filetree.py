"""Generic file-tree operations that never open a FIFO, socket or device.

Copy a tree (resumable, stoppable between files), fsync it, remove it, list a folder's real
sub-folders, remove a folder only if empty. The claim (``watcher.slots``), the outbox's
cross-filesystem ``move`` and reconciliation all use these; none of them knows about jobs.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from pipeline.atomic import fsync_dir


class CopyStopped(Exception):
    """A copy was asked to stop (shutdown) between two files; what is copied so far stays."""


def _never() -> bool:
    return False


def fsync_tree(root: Path, *, stop: Callable[[], bool] = _never) -> None:
    """fsync every regular file and folder under ``root`` (best effort on folders).

    Only regular files are opened, non-blocking and without following links: a FIFO or device
    in a submitted job folder is never opened (opening a FIFO would block the daemon).
    ``stop`` is asked between files: True raises ``CopyStopped``.
    """
    if not root.is_dir() or root.is_symlink():
        _fsync_file(root)
        return
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if stop():
                raise CopyStopped(str(root))
            _fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def copy_tree(src: Path, dest: Path, *, exist_ok: bool = False, resume: bool = False,
              stop: Callable[[], bool] = _never) -> list[str]:
    """Copy a folder tree (links as links, metadata kept), stopping at the first error.

    Unlike ``shutil.copytree``, which gathers errors into one ``shutil.Error`` without an errno,
    a full or read-only disk surfaces as the ``OSError`` it is (``watcher.faults`` needs it).
    FIFOs, sockets and devices are never opened: they are left out (they hold no file content)
    and their paths, relative to ``src``, are returned so the caller can say so.

    ``stop`` is asked before each file: True raises ``CopyStopped`` (a shutdown must not wait
    for thousands of files). ``resume`` continues a stopped copy into the same ``dest``: a file
    already there with the source's size and mtime (set last, by ``copystat``) is kept.
    """
    dest.mkdir(exist_ok=exist_ok or resume)
    skipped: list[str] = []
    for entry in os.scandir(src):
        if stop():
            raise CopyStopped(str(src))
        target = dest / entry.name
        if resume and _same_copy(entry, target):
            continue
        if entry.is_symlink():
            if resume:
                remove_tree(target)
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            inner = copy_tree(Path(entry.path), target, exist_ok=exist_ok, resume=resume,
                              stop=stop)
            skipped += [f"{entry.name}/{rel}" for rel in inner]
        elif not copy_regular(Path(entry.path), target):
            skipped.append(entry.name)
    shutil.copystat(src, dest)
    return skipped


def _same_copy(entry: os.DirEntry[str], target: Path) -> bool:
    """A regular file copied completely by an earlier, stopped run (size and mtime match)."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        mine, theirs = entry.stat(follow_symlinks=False), os.lstat(target)
    except OSError:
        return False
    return (stat.S_ISREG(theirs.st_mode) and theirs.st_size == mine.st_size
            and theirs.st_mtime_ns == mine.st_mtime_ns)


def copy_regular(src: Path, dest: Path) -> bool:
    """Copy ``src`` if it is a regular file (opened non-blocking, links not followed).

    False, with nothing written, for a FIFO, socket or device.
    """
    fd = _open_plain(src)
    if fd is None:
        return False
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        os.set_blocking(fd, True)
        with open(dest, "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
    shutil.copystat(src, dest)
    return True


def remove_tree(path: Path) -> None:
    """Remove a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    """fsync ``path`` if it is a regular file; never opens a FIFO, device or link."""
    fd = _open_plain(path)
    if fd is None:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    finally:
        os.close(fd)


def _open_plain(path: Path) -> int | None:
    """A read-only descriptor, opened non-blocking (a FIFO never blocks) without following a
    link; None for a socket or a link swapped in (ENXIO, ELOOP). The caller checks S_ISREG."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.ELOOP):
            return None
        raise


def remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is an empty folder; anything else (absent, not empty) stays."""
    try:
        folder.rmdir()
    except OSError:
        pass


def subdirs(folder: Path) -> list[Path]:
    """The folders directly in ``folder`` (links to folders are not followed); [] if unreadable."""
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
