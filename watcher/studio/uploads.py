"""A submission from the page: bounded per file and per request, written with the CLI's code.

The request's declared length is checked before a byte is read (no length, or more than the
request limit: refused); the multipart parser then spools at most that much, and each file is
checked against the per-file limit before anything reaches the inbox.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile

from pipeline.errors import InputError
from watcher.config import Config
from watcher.jobfolder import AUDIO_EXT, IMAGE_EXT, JOB_KEYS, VIDEO_EXT
from watcher.jobzip import ZipLimits
from watcher.submit import JobFile, check_file_name, job_settings, submit_job, submit_zip

MOTIONS = ("clip", "voice", "still")


class TooLargeError(InputError):
    """An upload over the page's limits."""

    title = "Upload too large"


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Bounds on one submission; by default those of a zipped job."""

    max_file_bytes: int = ZipLimits().max_total_bytes
    max_request_bytes: int = ZipLimits().max_total_bytes

    def check_request(self, content_length: str | None, limit: int | None = None) -> None:
        """Refuse a request without a length or longer than ``limit`` (default: a submission's)."""
        limit = self.max_request_bytes if limit is None else limit
        if content_length is None or not content_length.isdigit():
            raise TooLargeError("the upload did not say how large it is",
                                fix="send it from the page's form")
        if int(content_length) > limit:
            raise TooLargeError(
                f"the upload is {_mb(int(content_length))}; the limit is "
                f"{_mb(limit)} per submission",
                fix="send smaller files (a shorter recording, a smaller photo)")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _file(form: FormData, key: str) -> UploadFile | None:
    value = form.get(key)
    if isinstance(value, UploadFile) and value.filename:
        return value
    return None


def _writer(upload: UploadFile) -> Any:
    def write(dest: Path) -> None:
        upload.file.seek(0)
        with open(dest, "xb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
    return write


def settings_from(form: FormData) -> dict[str, Any]:
    """The job.yaml settings the form chose (empty fields: as configured)."""
    data: dict[str, Any] = {}
    engine = str(form.get("engine") or "")
    if engine:
        data["lipsync"] = False if engine == "off" else engine
    enhance = str(form.get("enhance") or "")
    if enhance:
        if enhance not in ("true", "false"):
            raise InputError("enhance must be on or off")
        data["enhance"] = enhance == "true"
    motion = str(form.get("motion") or "")
    if motion:
        if "motion" not in JOB_KEYS:
            raise InputError("this facedrop has no motion setting")
        data["motion"] = motion
    return data


def submit_form(config: Config, form: FormData, limits: UploadLimits) -> Path:
    """Photo + voice (+ driving clip), or a job zip, into the inbox; the entry's path."""
    uploads = {k: _file(form, k) for k in ("photo", "voice", "zip", "driving")}
    for key, upload in uploads.items():
        if upload is not None and (upload.size or 0) > limits.max_file_bytes:
            raise TooLargeError(
                f"the {key} file is {_mb(upload.size or 0)}; the limit is "
                f"{_mb(limits.max_file_bytes)} per file", file=upload.filename)
    name = str(form.get("name") or "").strip()
    zipped = uploads["zip"]
    if zipped is not None:
        if uploads["photo"] or uploads["voice"]:
            raise InputError("send either a photo and a voice recording, or a job zip, not both")
        zip_name = check_file_name(zipped.filename or "", {".zip"}, "job zip")
        return submit_zip(config, name or Path(zip_name).stem, _writer(zipped))
    photo, voice = uploads["photo"], uploads["voice"]
    if photo is None or voice is None:
        raise InputError("a job needs a photo and a voice recording (or a job zip)",
                         fix="choose both files, then submit")
    face = check_file_name(photo.filename or "", IMAGE_EXT, "face photo")
    audio = check_file_name(voice.filename or "", AUDIO_EXT, "audio file")
    files = [JobFile(face, _writer(photo)), JobFile(audio, _writer(voice))]
    driving = None
    if uploads["driving"] is not None:
        driving = check_file_name(uploads["driving"].filename or "", VIDEO_EXT, "driving video")
        files.append(JobFile(driving, _writer(uploads["driving"])))
    data = job_settings(face, audio, driving, settings_from(form))
    return submit_job(config, name or Path(audio).stem, files, data)
