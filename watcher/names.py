"""File and folder names that fit the disk: byte limits, UTF-8, " (n)" suffixes, NFC.

A file system limits a *name* in bytes (255 on APFS, ext4, most others), not in characters: a
250-byte job name is legal in the inbox, but ``<name> (2)`` or ``<name>.mp4`` next to it is not,
and ``ENAMETOOLONG`` then fails the daemon at every restart. Every name facedrop makes from a
submitter's name goes through here: cut on a UTF-8 code point boundary (never half a character),
the suffix kept, and numbered " (2)", " (3)"... until it is free. macOS stores names decomposed
(NFD) while Linux keeps the bytes as given, so names are compared in NFC: "Café" typed on a Mac
and "Café" from Linux are the same job name.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

NAME_MAX_FALLBACK = 255  # bytes; POSIX systems without pathconf, and Windows-ish mounts
MAX_NUMBER = 10_000
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR)


def name_max(folder: Path) -> int:
    """The longest name in bytes that ``folder``'s file system accepts (fallback 255)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX_FALLBACK
    return limit if limit and limit > 0 else NAME_MAX_FALLBACK


def nfc(name: str) -> str:
    """The NFC form of ``name``, for comparing names across macOS and Linux."""
    return unicodedata.normalize("NFC", name)


def utf8_len(text: str) -> int:
    """Bytes ``text`` takes on disk (lone surrogates from undecodable names count as 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes, ending on a whole code
    point, and not between a letter and its combining accent (NFD "e" + U+0301 stays whole)."""
    out, used = [], 0
    for char in text:
        size = utf8_len(char)
        if used + size > max_bytes:
            break
        out.append(char)
        used += size
    if len(out) < len(text) and unicodedata.combining(text[len(out)]):
        while out and unicodedata.combining(out[-1]):  # the cut glyph's marks that fit...
            out.pop()
        if out:
            out.pop()  # ...and its base letter
    return "".join(out)


def fit(name: str, max_bytes: int, suffix: str = "") -> str:
    """``name + suffix`` within ``max_bytes``, cutting ``name`` (never ``suffix``).

    Trailing spaces and dots left by a cut are dropped (Finder and Windows hide or refuse them).
    """
    room = max_bytes - utf8_len(suffix)
    if room <= 0:
        raise ValueError(f"no room for a name before {suffix!r} in {max_bytes} bytes")
    if utf8_len(name) <= room:
        return name + suffix
    return (cut_utf8(name, room).rstrip(" .") or "job") + suffix


def fit_file(name: str, max_bytes: int) -> str:
    """A file name within ``max_bytes``, keeping its extension (``.mp4``)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or utf8_len("." + ext) > 16:
        return fit(name, max_bytes)
    return fit(stem, max_bytes, "." + ext)


def numbered(name: str, n: int, max_bytes: int) -> str:
    """The ``n``-th candidate for ``name``: ``name`` itself, then ``name (2)``, ``name (3)``..."""
    return fit(name, max_bytes, "" if n == 1 else f" ({n})")


def unique(name: str, taken: Callable[[str], bool], max_bytes: int) -> str:
    """The first of ``numbered(name, 1..)`` for which ``taken`` is false."""
    for n in range(1, MAX_NUMBER):
        candidate = numbered(name, n, max_bytes)
        if not taken(candidate):
            return candidate
    raise FileExistsError(f"no free name for {name!r} after {MAX_NUMBER} tries")


def taken_in(parent: Path) -> Callable[[str], bool]:
    """``taken`` for ``unique``: a name present in ``parent``, compared in NFC."""
    try:
        present = {nfc(entry) for entry in os.listdir(parent)}
    except FileNotFoundError:
        present = set()
    return lambda candidate: nfc(candidate) in present


def reserve_dir(
    parent: Path, name: str, *, mkdir: Callable[[Path], None] = os.mkdir
) -> Path:
    """Create ``parent/name`` (or ``name (2)``...) fitted to the disk, never reusing a folder.

    ``mkdir`` is the atomic test: a name created meanwhile by someone else is skipped.
    """
    parent.mkdir(parents=True, exist_ok=True)
    limit, present = name_max(parent), taken_in(parent)
    for n in range(1, MAX_NUMBER):
        candidate = numbered(name, n, limit)
        if present(candidate):
            continue
        try:
            mkdir(parent / candidate)
        except FileExistsError:
            continue
        return parent / candidate
    raise FileExistsError(f"no free folder name for {name!r} in {parent}")


def rename_unique(
    src: Path, parent: Path, name: str, *, rename: Callable[[Path, Path], None] = os.rename
) -> Path:
    """Rename the folder ``src`` into ``parent`` under the first free fitted ``name (n)``.

    A rename onto an existing non-empty folder fails, so a name taken meanwhile is skipped.
    """
    limit, present = name_max(parent), taken_in(parent)
    for n in range(1, MAX_NUMBER):
        candidate = numbered(name, n, limit)
        if present(candidate) or (parent / candidate).exists():
            continue
        try:
            rename(src, parent / candidate)
        except OSError as err:
            if err.errno in _TAKEN:  # someone made that name meanwhile: try the next
                continue
            raise
        return parent / candidate
    raise FileExistsError(f"no free name for {name!r} in {parent}")
