"""Check a weights folder against the manifest, and import files a user already has.

``verify`` reports every file as ok / missing / size mismatch / hash mismatch (or unpinned when
the manifest has no hash for it); ``import_dir`` finds model files in any folder by name or by
content and copies them in. What a job needs before it starts is ``pipeline.prerequisites``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pipeline.errors import WeightsError
from pipeline.weights.files import (
    check_file,
    copy_atomically,
    partial_path,
    place,
    sha256_file,
)
from pipeline.weights.manifest import MANIFEST, WeightFile


class State(StrEnum):
    """The state of one model file on disk."""

    OK = "ok"
    UNPINNED = "present (no pinned hash)"
    MISSING = "missing"
    SIZE_MISMATCH = "size mismatch"
    HASH_MISMATCH = "hash mismatch"


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One file's verification result, with what to do about it."""

    entry: WeightFile
    path: Path
    state: State
    detail: str = ""

    @property
    def ok(self) -> bool:
        """The pinned file (or one with no pin)."""
        return self.state in (State.OK, State.UNPINNED)

    @property
    def foreign(self) -> bool:
        """Present, but not the pinned file (a mirror's re-save, a fine-tune, or damage).

        Jobs load it anyway (a loader names any key or shape that does not fit), so ``doctor``
        warns about it rather than failing.
        """
        return self.state in (State.SIZE_MISMATCH, State.HASH_MISMATCH)

    @property
    def fix(self) -> str:
        """What the user should do ('' when nothing)."""
        if self.ok:
            return ""
        if self.state is State.MISSING:
            return f"facedrop weights fetch {self.entry.name}, or facedrop weights import DIR"
        return (f"delete {self.path} and run 'facedrop weights fetch {self.entry.name}' "
                "(it is corrupt, truncated or not the official file)")


def check_entry(entry: WeightFile, weights_dir: Path, *, hash_files: bool = True) -> FileStatus:
    """Verify one file: presence, exact size, and (with ``hash_files``) its sha256."""
    path = weights_dir / entry.relpath
    if not path.is_file():
        return FileStatus(entry, path, State.MISSING, "not found")
    actual = path.stat().st_size
    if entry.size is not None and actual != entry.size:
        return FileStatus(entry, path, State.SIZE_MISMATCH,
                          f"{actual:,} bytes, expected {entry.size:,}")
    if entry.sha256 is None:
        return FileStatus(entry, path, State.UNPINNED, f"sha256 {sha256_file(path)}")
    if hash_files and (digest := sha256_file(path)) != entry.sha256:
        return FileStatus(entry, path, State.HASH_MISMATCH,
                          f"sha256 {digest}, expected {entry.sha256}")
    return FileStatus(entry, path, State.OK, "verified" if hash_files else "size ok")


def verify(weights_dir: Path, entries: Sequence[WeightFile] = MANIFEST, *,
           hash_files: bool = True) -> list[FileStatus]:
    """The status of every manifest file under ``weights_dir``, in manifest order."""
    return [check_entry(e, weights_dir, hash_files=hash_files) for e in entries]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """One manifest file after ``import_dir``: imported / present / not found / rejected, or
    trusted (imported by name although it is not the pinned file; ``detail`` says how)."""

    entry: WeightFile
    status: str
    source: Path | None = None
    detail: str = ""


def _candidates(files: list[Path], entry: WeightFile) -> list[Path]:
    """Files that may be ``entry``: same name first, then (if the size is known) same size."""
    named = [f for f in files if f.name == entry.filename]
    sized = [f for f in files if entry.size is not None and f not in named
             and f.stat().st_size == entry.size]
    return named + sized


def _matches(path: Path, entry: WeightFile) -> bool:
    if entry.size is not None and path.stat().st_size != entry.size:
        return False
    return entry.sha256 is None or sha256_file(path) == entry.sha256


def _import_one(entry: WeightFile, files: list[Path], weights_dir: Path,
                trust: bool) -> ImportResult:
    dest = weights_dir / entry.relpath
    if check_entry(entry, weights_dir).ok:
        return ImportResult(entry, "present", dest)
    candidates = _candidates(files, entry)
    for src in candidates:
        if src.resolve() != dest.resolve() and _matches(src, entry):
            partial = copy_atomically(src, dest)
            # Re-check the copy, not the source: a disk error must not place a bad file.
            check_file(partial, what=entry.filename, size=entry.size, sha256=entry.sha256,
                       source=str(src))
            place(partial, dest)
            return ImportResult(entry, "imported", src)
    named = [c for c in candidates if c.name == entry.filename]
    if named and trust:
        return _trusted(entry, named[0], dest)
    if named:
        partial_path(dest).unlink(missing_ok=True)
        return ImportResult(entry, "rejected", named[0],
                            "same name but a different size or sha256: not the official file")
    return ImportResult(entry, "not found")


def _trusted(entry: WeightFile, src: Path, dest: Path) -> ImportResult:
    """Import ``src`` by its name although it differs from the pin (``--trust``)."""
    digest = sha256_file(src)
    size = src.stat().st_size
    if dest.is_file() and dest.resolve() != src.resolve() and sha256_file(dest) == digest:
        return ImportResult(entry, "present", dest, "the same file was imported before")
    if dest.resolve() != src.resolve():
        partial = copy_atomically(src, dest)
        check_file(partial, what=entry.filename, size=size, sha256=digest, source=str(src))
        place(partial, dest)
    if entry.size is not None and size != entry.size:
        how = f"{size:,} bytes, the pinned file has {entry.size:,}"
    else:
        how = f"sha256 {digest[:16]}..., the pinned file's is {(entry.sha256 or '?')[:16]}..."
    return ImportResult(entry, "trusted", src, how)


def import_dir(src: Path, weights_dir: Path, entries: Sequence[WeightFile] = MANIFEST, *,
               trust: bool = False) -> list[ImportResult]:
    """Copy every manifest file found anywhere under ``src`` into ``weights_dir``.

    A file is taken when its name or its size matches and its sha256 is the pinned one (so a
    renamed ``Wav2Lip_GAN.pth`` is found, and a same-named animal-model file is not taken).
    With ``trust``, a file with the right name is taken even when it differs from the pin (a
    mirror's re-save, a fine-tune): its result is ``trusted``. Copies are verified after
    copying and renamed into place atomically.
    """
    if not src.is_dir():
        raise WeightsError(f"{src} is not a folder", file=src,
                           fix="give the folder that holds your .pth / .tflite files")
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    return [_import_one(entry, files, weights_dir, trust) for entry in entries]
