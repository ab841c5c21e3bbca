"""Writing files so that a reader (Finder, Dropbox, a crash) never sees half of one."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the file data is what matters
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The hidden temp name a write to ``path`` goes through: ``.<name>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def remove_temps(path: Path) -> list[Path]:
    """Remove the temp files writes to ``path`` left behind (a writer killed between its temp
    file and the rename); only for the file's one owner, when no write of it can be running."""
    removed = []
    for temp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
        removed.append(temp)
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temp file in the same folder and a rename.

    The file is created with mode 0666 less the umask, like any new file (``mkstemp`` would
    give 0600, so text files in the outbox would differ from the videos beside them).
    """
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """``write_bytes_atomic`` of ``text`` as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def copy_fsynced(src: Path, dest: Path, chunk: int = 1 << 20) -> Path:
    """Copy ``src`` to ``dest`` (a temp or partial name) and fsync it; the caller renames it."""
    with src.open("rb") as fin, dest.open("wb") as fout:
        shutil.copyfileobj(fin, fout, chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return dest


def copy_file_atomic(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` through a fsynced hidden temp file and a rename."""
    tmp = temp_name(dest)
    try:
        copy_fsynced(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    return dest
