"""File primitives for weights: hashing, checking and atomic placement.

A model file appears under its final name only complete and verified: it is written as
``<name>.partial``, fsynced, checked, then renamed (same folder, so the rename is atomic).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.atomic import copy_fsynced, fsync_dir
from pipeline.digest import sha256_file
from pipeline.errors import WeightsError

CHUNK = 1 << 20

FETCH_OR_IMPORT = (
    "run 'facedrop weights fetch' again (if the source stays unreachable, use a mirror: "
    "--mirror URL or FACEDROP_WEIGHTS_MIRROR), or 'facedrop weights import DIR' with files you "
    "have"
)


def partial_path(dest: Path) -> Path:
    """The in-progress name for ``dest`` (same folder, so renaming it is atomic)."""
    return dest.with_name(dest.name + ".partial")


def looks_like_html(head: bytes) -> bool:
    """True when the bytes start like a web page; no model or archive format starts with '<'."""
    return head.lstrip()[:1] == b"<"


def check_file(path: Path, *, what: str, size: int | None, sha256: str | None, source: str) -> None:
    """Raise ``WeightsError`` (and delete ``path``) unless it has the expected size and hash.

    ``source`` (a URL or a path) goes into the message so the user knows where the bad copy
    came from. The checks run from most to least telling: an HTML page, the size, the hash.
    """
    with path.open("rb") as f:
        head = f.read(512)
    problem = ""
    if looks_like_html(head):
        problem = f"{source} returned an HTML web page (or XML error), not the {what} file"
    elif size is not None and (actual := path.stat().st_size) != size:
        problem = (f"wrong size for {what}: got {actual:,} bytes, expected {size:,} "
                   f"(truncated or a different file) from {source}")
    elif sha256 is not None and (actual_hash := sha256_file(path)) != sha256:
        problem = (f"sha256 mismatch for {what}: got {actual_hash}, expected {sha256}: "
                   f"{source} gave a corrupt or different file")
    if problem:
        path.unlink(missing_ok=True)
        raise WeightsError(problem, file=source, fix=f"the bad copy was deleted; {FETCH_OR_IMPORT}")


def place(partial: Path, dest: Path) -> Path:
    """Atomically rename a complete, fsynced ``partial`` to ``dest`` and sync the folder."""
    os.replace(partial, dest)
    fsync_dir(dest.parent)
    return dest


def copy_atomically(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest.partial``, fsync it, and return the partial path (not yet placed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return copy_fsynced(src, partial_path(dest), CHUNK)
