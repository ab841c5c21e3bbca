"""The estimate of a job's duration before it starts (``status``, ``status.json``).

The job's length is its audio's, read from the container header (no decoding: ``status`` must
stay quick); the rate comes from ``watcher.rates``. Any problem reading the folder gives no
length, and then the estimate says why instead of a number.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from watcher.jobfolder import AUDIO_EXT, job_files, pick, read_job_yaml
from watcher.rates import NO_ESTIMATE, RateStore


def header_seconds(path: Path) -> float | None:
    """The audio length its container header states, or None."""
    import av  # only when a queued job is estimated

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except (OSError, av.FFmpegError):
        return None


def job_audio_seconds(folder: Path, probe: Callable[[Path], float | None] = header_seconds
                      ) -> float | None:
    """How long the job folder's recording is, or None if it cannot be told yet."""
    try:
        data = read_job_yaml(folder)
        audio = pick(folder, job_files(folder), data, "audio", AUDIO_EXT, "audio")
    except Exception:  # a bad folder fails in its own run, not in status
        return None
    return probe(audio) if audio is not None else None


def job_estimate(folder: Path, rates: RateStore,
                 probe: Callable[[Path], float | None] = header_seconds) -> dict[str, Any]:
    """``{"seconds", "device", "from_jobs", "text"}``, or ``{"text": "no estimate yet"}``."""
    seconds = job_audio_seconds(folder, probe)
    if seconds is None:
        return {"text": f"{NO_ESTIMATE} (the recording's length is unknown)"}
    found = rates.estimate(seconds)
    if found is None:
        return {"text": f"{NO_ESTIMATE} (no finished job on this machine)"}
    return {**found.as_dict(), "video_seconds": round(seconds, 2)}
