"""A job folder on disk -> a validated ``JobSpec`` (DESIGN.md, "The job folder").

Everything a submitter can get wrong is an ``InputError`` naming the key or file and the fix:
YAML syntax, unknown keys, wrong types, names escaping the folder (``../``, absolute paths,
symlinks out), ambiguity (two photos and no ``face:``, Dropbox conflicted copies), media that
is unreadable or over the configured limits, and driving clips that do not exist.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import InputError
from pipeline.lipsync.registry import ENGINE_NAMES
from pipeline.liveportrait.drivers import DriverLibrary, DrivingSource
from pipeline.liveportrait.drivers import resolve_driving as resolve_clip
from pipeline.media import formats
from pipeline.media.audio import load_audio
from pipeline.media.image import load_image
from pipeline.media.wholeness import Whole, check_whole
from pipeline.spec import JobSpec
from watcher.config import Config
from watcher.jobmotion import (
    MOTION_KEYS,
    generated,
    motion_fields,
    resolved_motion,
    validate_motion_keys,
)
from watcher.names import fit_file, name_max, utf8_len
from watcher.saferead import (
    UnsafeFileError,
    clip,
    open_regular,
    read_yaml_file,
    sha256_regular,
    shorten,
    size_regular,
)

JOB_FILE = "job.yaml"
# Wav2Lip reads 16 mel steps of 12.5 ms around each video frame: 0.2 s is the shortest audio
# that fills one window (5 frames at 25 fps). Anything shorter is a click, not speech.
MIN_AUDIO_SECONDS = 0.2
NAME_BYTES_MAX = 1024  # a path inside the job folder; longer ones cannot exist on any disk
IMAGE_EXT = frozenset(formats.IMAGE_EXT)
AUDIO_EXT = frozenset(formats.AUDIO_EXT)
VIDEO_EXT = frozenset(formats.VIDEO_EXT)
# Finder and sync-client litter: never part of a job, never a reason to wait.
IGNORED_NAMES = frozenset({".DS_Store", "Icon\r", "desktop.ini", "Thumbs.db", ".dropbox"})
MAX_LISTED = 24  # wrong settings named in one message: every known key, and a few unknown
CONFLICT = re.compile(r"conflicted copy|shared folder conflict|case conflict", re.IGNORECASE)

# key -> (accepted types, description for messages, an example line)
JOB_KEYS: dict[str, tuple[tuple[type, ...], str, str]] = {
    "face": ((str,), "a file name in the job folder", "face: me.jpg"),
    "audio": ((str,), "a file name in the job folder", "audio: voice.wav"),
    "driving": (
        (str,),
        "a driving-library clip name or a video file in the job folder",
        "driving: calm",
    ),
    "output": ((str,), "a file name ending in .mp4", "output: hello.mp4"),
    "fps": ((int, float), "a number of frames per second", "fps: 25"),
    "lipsync": (
        (bool, str),
        f"true or false, or a lip-sync engine name ({', '.join(ENGINE_NAMES)})",
        "lipsync: true",
    ),
    "enhance": ((bool,), "true or false", "enhance: false"),
    "quality": ((bool,), "true or false", "quality: false"),
    "files": (
        (list,),
        "a list of file names (or {name, size, sha256} entries)",
        "files: [me.jpg, voice.wav]",
    ),
    **MOTION_KEYS,
}


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One ``files:`` entry: a name that must be present, optionally with its size or hash."""

    name: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """A validated job and the facts checked on the way."""

    spec: JobSpec
    resolved: dict[str, Any]  # the settings actually used, written to the outbox as job.yaml
    audio_seconds: float
    image_size: tuple[int, int]


def is_ignored(name: str) -> bool:
    """Sync and Finder litter that is neither part of a job nor a sign it is incomplete."""
    return name in IGNORED_NAMES or name.startswith(("._", ".dropbox"))


def read_job_yaml(folder: Path) -> dict[str, Any]:
    """Parse and type-check ``job.yaml``; an empty file is an empty job.

    Read through ``saferead``: a regular file inside the folder, at most a few KiB, no YAML
    anchors or aliases.
    """
    path = folder / JOB_FILE
    if not os.path.lexists(path):
        raise InputError(
            "the job folder has no job.yaml", fix="add a job.yaml (it may be empty)", file=path
        )
    data = read_yaml_file(path, folder)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"job.yaml holds {_shape(data)}, but it must be 'key: value' lines (a mapping)",
            fix="write one setting per line, e.g. 'face: me.jpg', without a leading '- '",
            file=path,
        )
    validate_job_keys(data, path)
    return data


def _shape(data: object) -> str:
    """What a non-mapping YAML document is, in words."""
    if isinstance(data, list):
        return f"a list of {len(data)} item{'s' if len(data) != 1 else ''}"
    return f"a single {type(data).__name__} value ({clip(data, 40)})"


def validate_job_keys(data: dict[str, Any], path: Path | str) -> None:
    """Reject unknown keys and wrong types, naming *every* bad key with its expected kind.

    One ``InputError`` for the whole file: a submitter who got four settings wrong learns all
    four at once, not one per resubmission.
    """
    problems: list[tuple[str, str]] = []  # (problem, fix)
    for key, value in data.items():
        problems.extend(_key_problems(key, value, path))
    if not problems:  # the keys that only make sense together (motion with driving)
        try:
            validate_motion_keys(data, path)
        except InputError as err:
            problems.append((err.problem, err.fix))
    if not problems:
        return
    if len(problems) == 1:
        raise InputError(problems[0][0], fix=problems[0][1], file=path)
    shown = problems[:MAX_LISTED]  # a 16 KiB job.yaml can hold 2,000 keys: not one message
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise InputError(
        f"job.yaml has {len(problems)} wrong settings: " + "; ".join(p for p, _ in shown) + more,
        fix="; ".join(dict.fromkeys(f for _, f in shown)),
        file=path,
    )


def _key_problems(key: object, value: object, path: Path | str) -> list[tuple[str, str]]:
    """What is wrong with one ``key: value`` of job.yaml ([] when nothing is)."""
    if key not in JOB_KEYS:
        shown = key if isinstance(key, str) and len(key) <= 40 else clip(key, 40)
        return [(f"unknown key '{shown}' in job.yaml",
                 f"remove it; known keys: {', '.join(JOB_KEYS)}")]
    assert isinstance(key, str)
    types, what, example = JOB_KEYS[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        return [(f"'{key}' in job.yaml must be {what}, not {clip(value)}",
                 f"write it like this: {example}")]
    if key == "lipsync" and isinstance(value, str) and value not in ENGINE_NAMES:
        return [(f"'lipsync' in job.yaml must be {what}, not {clip(value)}",
                 f"write e.g. lipsync: {ENGINE_NAMES[0]} (or lipsync: true for the configured "
                 "engine, lipsync: false for none)")]
    if key == "fps" and isinstance(value, int | float) and not 1 <= value <= 120:
        return [(f"'fps' must be between 1 and 120, not {clip(value)}", "write e.g. fps: 25")]
    if key == "files":
        try:
            manifest_entries({"files": value}, path)
        except InputError as err:
            return [(err.problem, err.fix)]
    return []


def lipsync_engine(data: dict[str, Any]) -> str | None:
    """The engine a validated job.yaml names (``lipsync: musetalk``); None for true, false or
    no key (the configured engine, or none)."""
    value = data.get("lipsync")
    return value if isinstance(value, str) else None


def manifest_entries(data: dict[str, Any], path: Path | str) -> list[ManifestEntry]:
    """The optional ``files:`` manifest, validated."""
    entries = []
    listed = data.get("files") or []
    if not isinstance(listed, list):  # a string would be read letter by letter
        raise InputError(
            f"'files' in job.yaml must be {JOB_KEYS['files'][1]}, not {clip(listed)}",
            fix=f"write it like this: {JOB_KEYS['files'][2]}",
            file=path,
        )
    for item in listed:
        if isinstance(item, str):
            item = {"name": item}
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or (set(item) - {"name", "size", "sha256"})
        ):
            raise InputError(
                f"bad 'files' entry {clip(item)}",
                fix="use a name or {name:, size:, sha256:}",
                file=path,
            )
        size, sha = item.get("size"), item.get("sha256")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InputError(
                f"the size of '{clip(item['name'], 60)}' in 'files' must be a whole number of "
                f"bytes, not {clip(size)}",
                fix="write e.g. size: 48213",
                file=path,
            )
        check_sha256(item["name"], sha, path)
        entries.append(ManifestEntry(item["name"], size, sha.lower() if sha else None))
    return entries


def _yaml_kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def check_sha256(name: str, sha: object, path: Path | str) -> None:
    """A manifest hash must be 64 hex digits *as text*: YAML reads ``000...0`` as the number 0."""
    if sha is None:
        return
    where = f"the sha256 of '{clip(name, 60)}' in 'files'"
    if not isinstance(sha, str):
        raise InputError(
            f"{where} was read as {_yaml_kind(sha)} ({clip(sha, 40)}), not as text: "
            "YAML turns hashes made only of digits (or digits and one 'e') into numbers",
            fix='put the hash in quotes: sha256: "<64 hex digits>"',
            file=path,
        )
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise InputError(
            f"{where} must be 64 hexadecimal digits, not {clip(sha)}",
            fix="copy the hash from 'shasum -a 256 <file>' (first column)",
            file=path,
        )


def safe_member(folder: Path, name: str, key: str) -> Path:
    """The file ``name`` inside ``folder``; rejects absolute names, ``..`` and symlinks out."""
    pure = PurePosixPath(name)
    if utf8_len(name) > NAME_BYTES_MAX:
        raise InputError(
            f"'{key}: {shorten(name, 40)}' is {utf8_len(name)} bytes "
            f"long; no file name in the job folder can be longer than {NAME_BYTES_MAX}",
            fix="give the file a shorter name and use that name in job.yaml",
            file=folder / JOB_FILE,
        )
    if not name or pure.is_absolute() or name.startswith("~") or "\\" in name:
        raise InputError(
            f"'{key}: {shorten(name, 60)}' must be a plain file name inside the job folder",
            fix="give just the file name, e.g. face.jpg",
            file=folder / JOB_FILE,
        )
    if ".." in pure.parts:
        raise InputError(
            f"'{key}: {shorten(name, 60)}' points outside the job folder",
            fix="put the file in the job folder",
            file=folder / JOB_FILE,
        )
    path = folder / name
    check_inside(folder, path)
    if not os.path.lexists(path):
        raise InputError(
            f"'{key}: {shorten(name, 60)}' names a file that is not in the job folder",
            fix="check the spelling or add the file",
            file=path,
        )
    with open_regular(path, folder):  # a FIFO, device or folder is refused here, unread
        pass
    return path


def check_inside(folder: Path, path: Path) -> None:
    """``InputError`` if ``path`` (after following symlinks) lies outside ``folder``."""
    real = Path(os.path.realpath(path))  # never raises on a link loop (Path.resolve does)
    if not real.is_relative_to(os.path.realpath(folder)):
        raise UnsafeFileError(
            f"'{path.name}' is a link to a file outside the job folder ({clip(str(real), 120)})",
            fix="copy the file itself into the job folder",
            file=path,
        )


def job_files(folder: Path) -> list[Path]:
    """The job's files at its top level (not job.yaml, not litter), each checked to stay inside."""
    files = []
    for path in sorted(folder.iterdir()):
        # Hidden names are never inputs: a tool's own file (.gitkeep, even a FIFO) or a copy
        # in progress, which readiness already waited for. job.yaml may still name one.
        if path.name == JOB_FILE or is_ignored(path.name) or path.name.startswith("."):
            continue
        check_inside(folder, path)
        try:
            mode = path.stat().st_mode
        except OSError:  # a broken link or a link loop: not a file; if named, safe_member says so
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        elif not stat.S_ISDIR(mode):  # a FIFO, socket or device: refuse, never open it
            with open_regular(path, folder):
                pass
    return files


def pick(
    folder: Path, files: list[Path], data: dict[str, Any], key: str, exts: frozenset[str], what: str
) -> Path | None:
    """The file for ``key``: named in job.yaml, else the only candidate; ambiguity is an error."""
    if key in data:
        return safe_member(folder, data[key], key)
    found = [p for p in files if p.suffix.lower() in exts]
    conflicted = [p.name for p in found if CONFLICT.search(p.name)]
    if conflicted:
        raise InputError(
            f"a sync conflict copy makes the {what} ambiguous: {', '.join(conflicted)}",
            fix=f"delete the conflicted copy or name the file with '{key}:' in job.yaml",
            file=folder / conflicted[0],
        )
    if len(found) > 1:
        raise InputError(
            f"there are {len(found)} {what} files ({', '.join(p.name for p in found)}) and "
            f"job.yaml does not say which to use",
            fix=f"add '{key}: <file name>' to job.yaml or remove the extra files",
            file=folder / JOB_FILE,
        )
    return found[0] if found else None


def check_manifest(folder: Path, data: dict[str, Any]) -> None:
    """Every ``files:`` entry is present, with its size and hash if given."""
    for entry in manifest_entries(data, folder / JOB_FILE):
        path = safe_member(folder, entry.name, "files")
        size = size_regular(path, folder)
        if entry.size is not None and size != entry.size:
            raise InputError(
                f"'{entry.name}' has {size} bytes, job.yaml says {entry.size}",
                fix="copy the file again (or correct its size in job.yaml)",
                file=path,
            )
        if entry.sha256 and sha256_regular(path, folder) != entry.sha256:
            raise InputError(
                f"'{entry.name}' does not match its sha256 in job.yaml",
                fix="copy the file again (or correct its sha256 in job.yaml)",
                file=path,
            )


def check_complete(path: Path, what: str) -> None:
    """``InputError`` if ``path`` is only the beginning of a media file (a copy that stopped).

    Readiness already waited the grace period for it; by now it is a failure, not a wait.
    """
    verdict = check_whole(path)
    if verdict.state is Whole.INCOMPLETE:
        raise InputError(
            f"the {what} '{path.name}' is incomplete: it {verdict.reason}",
            fix="the copy or upload did not finish: put the whole file in the job folder again",
            file=path,
        )




def check_min_audio(path: Path, seconds: float) -> None:
    """``InputError`` for a recording too short to animate (a click, a file cut at once)."""
    if seconds < MIN_AUDIO_SECONDS:
        raise InputError(
            f"the recording '{path.name}' is only {math.floor(seconds * 1000) / 1000:g} s "
            f"long; facedrop needs at "
            f"least {MIN_AUDIO_SECONDS:g} s of audio",
            fix=f"record a longer take (at least {MIN_AUDIO_SECONDS:g} s), or check that the "
            "file was exported whole",
            file=path,
        )


def resolve_driving(
    folder: Path, files: list[Path], data: dict[str, Any], drivers_dir: Path
) -> str | Path | None:
    """A video in the folder (Path), a library clip name (str), or None for the default clip."""
    name = data.get("driving")
    if name is None and generated(data):
        return None  # motion: voice | still: a video in the folder drives nothing
    if name is None:
        return pick(folder, files, data, "driving", VIDEO_EXT, "driving video")
    if Path(name).suffix.lower() in VIDEO_EXT or os.path.lexists(folder / name):
        return safe_member(folder, name, "driving")  # a file of the job: stays inside it
    if "/" in name or "\\" in name or name.startswith(".") or utf8_len(name) > NAME_BYTES_MAX:
        raise InputError(
            f"'driving: {shorten(name, 60)}' is not a clip name",
            file=folder / JOB_FILE,
            fix="use a name from 'facedrop drivers list' or a video file in the job",
        )
    # NAME.mp4 in the folder, else a library clip or template: the one resolver decides
    choice = resolve_clip(name, DriverLibrary(drivers_dir), job_dir=folder,
                          job_file=folder / JOB_FILE)
    return choice.path if choice.source is DrivingSource.JOB_FOLDER else choice.name


def job_output_name(folder: Path, data: dict[str, Any], name: str, max_bytes: int) -> str:
    """The output file name: ``output:`` as given, or ``<job name>.mp4`` fitted to the disk."""
    if "output" not in data:
        return fit_file(f"{name}.mp4", max_bytes)  # a 250-byte job name still gets a video
    output = data["output"]
    if PurePosixPath(output).name != output or not output.endswith(".mp4") or output == ".mp4":
        raise InputError(
            f"'output: {shorten(output, 60)}' must be a plain file name ending in .mp4",
            fix="write e.g. output: hello.mp4",
            file=folder / JOB_FILE,
        )
    if utf8_len(output) > max_bytes:
        raise InputError(
            f"'output: {shorten(output, 40)}' is {utf8_len(output)} bytes long; the outbox's "
            f"disk allows names of at most {max_bytes} bytes",
            fix="choose a shorter output name, or leave 'output:' out to use the job's name",
            file=folder / JOB_FILE,
        )
    return output


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The files a job uses, chosen and checked to stay inside its folder (not yet decoded)."""

    face: Path
    audio: Path
    driving: str | Path | None
    output: str


@dataclass(frozen=True, slots=True)
class _Media:
    """What decoding the inputs found."""

    image_size: tuple[int, int]  # (width, height)
    audio_seconds: float


def parse_job_folder(folder: Path, config: Config, name: str | None = None) -> ParsedJob:
    """Validate a complete job folder into a ``ParsedJob`` (``InputError`` on any problem).

    Three phases, each failing before the next starts: read (job.yaml, the files, the
    manifest), choose (which file is the face, the audio, the driving clip, the output name),
    probe (decode and check the media).
    """
    name = name or folder.name
    data, files = _read(folder)
    inputs = _choose(folder, files, data, config, name)
    media = _probe(inputs, config)
    return _parsed(name, data, inputs, media, config)


def _read(folder: Path) -> tuple[dict[str, Any], list[Path]]:
    """job.yaml (checked), the job's files, and its ``files:`` manifest checked against them."""
    data = read_job_yaml(folder)
    conflicts = [
        p.name
        for p in folder.iterdir()
        if p.name != JOB_FILE
        and p.name.startswith("job")
        and p.suffix in (".yaml", ".yml")
        and CONFLICT.search(p.name)
    ]
    if conflicts:
        raise InputError(
            f"a sync conflict copy of job.yaml is present: {conflicts[0]}",
            fix="delete the copy you do not want",
            file=folder / conflicts[0],
        )
    files = job_files(folder)
    check_manifest(folder, data)
    return data, files


def _choose(
    folder: Path, files: list[Path], data: dict[str, Any], config: Config, name: str
) -> _Inputs:
    """The face, audio and driving files and the output name, by job.yaml or by elimination."""
    face = pick(folder, files, data, "face", IMAGE_EXT, "face photo")
    if face is None:
        raise InputError(
            "the job folder has no face photo",
            fix=f"add a {formats.spoken(formats.IMAGE_EXT)} photo of a face",
            file=folder,
        )
    audio = pick(folder, files, data, "audio", AUDIO_EXT, "audio")
    if audio is None:
        raise InputError(
            "the job folder has no audio file",
            fix=f"add a {formats.spoken(formats.AUDIO_EXT)} recording",
            file=folder,
        )
    driving = resolve_driving(folder, files, data, config.paths.drivers)
    output = job_output_name(folder, data, name, name_max(config.paths.outbox))
    return _Inputs(face, audio, driving, output)


def _probe(inputs: _Inputs, config: Config) -> _Media:
    """Decode the photo and the recording and check every media file is whole.

    Decoding now makes a bad photo or recording fail in milliseconds, before any model loads.
    """
    height, width = load_image(inputs.face, config.limits.max_image_pixels).shape[:2]
    seconds = load_audio(inputs.audio, config.limits.max_audio_seconds).duration
    # The decoders accept the beginning of a file; only a whole one may run (a stalled copy).
    check_complete(inputs.face, "face photo")
    check_complete(inputs.audio, "recording")
    check_min_audio(inputs.audio, seconds)  # after: a cut-off file is "incomplete", not "short"
    if isinstance(inputs.driving, Path):
        check_complete(inputs.driving, "driving video")
    return _Media((width, height), seconds)


def _parsed(
    name: str, data: dict[str, Any], inputs: _Inputs, media: _Media, config: Config
) -> ParsedJob:
    """The ``JobSpec`` (job.yaml over the config's job defaults) and the settings it resolves to."""
    d = config.job_defaults
    driving = inputs.driving
    spec = JobSpec(
        name=name,
        face=inputs.face,
        audio=inputs.audio,
        driving=driving,
        output_name=inputs.output,
        fps=float(data.get("fps", d.fps)),
        lipsync=bool(data.get("lipsync", d.lipsync)),
        enhance=data.get("enhance", d.enhance),
        quality=data.get("quality", d.quality),
        lipsync_engine=lipsync_engine(data),
        **motion_fields(data),
    )
    resolved = {
        "face": inputs.face.name,
        "audio": inputs.audio.name,
        "driving": driving.name
        if isinstance(driving, Path)
        else (driving or (None if generated(data) else config.pipeline.default_driver) or None),
        "output": inputs.output,
        "fps": spec.fps,
        # the engine that runs (true means the configured one), or false
        "lipsync": (spec.lipsync_engine or config.pipeline.lipsync_model) if spec.lipsync
        else False,
        "enhance": spec.enhance,
        "quality": spec.quality,
        **resolved_motion(spec, config.pipeline),
    }
    return ParsedJob(spec=spec, resolved=resolved, audio_seconds=media.audio_seconds,
                     image_size=media.image_size)
